"""The deployment zip: exactly the deployed tree, and it runs from a clean virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.package import PackageError, build_package, stray_imports
from shared.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]

LIST_FUNCTIONS = """
import json, function_app
print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())["bindings"][0]["type"]
                  for f in function_app.app.get_functions()}))
"""


def test_package_holds_the_deployed_tree_only(tmp_path):
    report = build_package(tmp_path / "app.zip")
    names = zipfile.ZipFile(report.path).namelist()
    assert report.files == len(names)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"function_app.py", "host.json", "requirements.txt", "functions", "shared", "maps"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", "local.settings.json"))]
    assert {f"maps/{p.name}" for p in (ROOT / "maps").glob("*.yaml")} <= set(names)
    # same tree, same bytes: a rebuilt package is identical (fixed timestamps, sorted entries)
    again = build_package(tmp_path / "again.zip")
    assert again.path.read_bytes() == report.path.read_bytes()


def test_a_deployed_module_importing_an_undeployed_package_is_refused(tmp_path):
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    for folder in ("functions", "maps"):
        (tmp_path / folder).mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "leak.py").write_text("from sandbox.dataverse import start\nimport json\n")
    with pytest.raises(PackageError, match=r"shared/leak.py imports sandbox"):
        build_package(tmp_path / "out.zip", root=tmp_path)
    assert not (tmp_path / "out.zip").exists()
    assert stray_imports([(tmp_path / "shared" / "leak.py", "shared/leak.py")]) == {"shared/leak.py": {"sandbox"}}


@pytest.mark.slow
def test_package_imports_in_a_clean_venv_with_its_requirements(tmp_path):
    """Unzip, create a venv, pip install requirements.txt from the package index, import function_app."""
    out = tmp_path / "app.zip"
    result = CliRunner().invoke(__import__("cli.main", fromlist=["app"]).app,
                                ["deploy", "package", "--out", str(out)])
    assert result.exit_code == 0, result.output
    site = tmp_path / "wwwroot"
    zipfile.ZipFile(out).extractall(site)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "-r", str(site / "requirements.txt")],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    # Minimal settings the runtime would have, and nothing of this checkout on the path.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1",
           "DUALSYNC_DATAVERSE_URL": "https://contoso.crm.dynamics.com",
           "DUALSYNC_FINANCE_URL": "https://contoso.operations.dynamics.com",
           "DUALSYNC_TRANSPORT": "servicebus", "DUALSYNC_SERVICEBUS_NAMESPACE": "ns.servicebus.windows.net",
           "DUALSYNC_STATE_BACKEND": "table",
           "DUALSYNC_STATE_TABLE_ENDPOINT": "https://acct.table.core.windows.net"}
    listed = subprocess.run([str(python), "-c", LIST_FUNCTIONS], cwd=site, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    functions = json.loads(listed.stdout.strip().splitlines()[-1])
    maps = load_catalog().maps
    assert sorted(n for n in functions if n.startswith("sync_")) == sorted(f"sync_{m}" for m in maps)
    assert {functions[f"sync_{m}"] for m in maps} == {"serviceBusTrigger"}
    # the checkout was not what got imported
    where = subprocess.run([str(python), "-c", "import shared; print(shared.__file__)"], cwd=site, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "shared" / "__init__.py")
    assert str(ROOT) not in where.stdout
