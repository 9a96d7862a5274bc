"""The zip the Functions runtime deploys: the app's entry point, host settings, requirements, the
blueprints, the engine and the catalog, and nothing else (no sandbox, bench, tests, CLI, deploy tooling,
infrastructure, docs, local settings, virtual environments or byte code).

The zip is reproducible: entries are sorted and carry a fixed timestamp, so the same tree gives the
same bytes. Before writing, every packaged module's imports are checked: importing one of the
project's packages that is not shipped (``sandbox``, ``cli``...) would fail only in Azure, so it fails here.
"""

from __future__ import annotations

import ast
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FILES = ("function_app.py", "host.json", "requirements.txt")
FOLDERS = ("functions", "shared", "maps")
# The project's own top-level packages; importing one that is not in FOLDERS breaks the deployed app.
PROJECT_PACKAGES = frozenset({"functions", "shared", "sandbox", "cli", "bench", "tests", "deploy", "infra"})
SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
SKIP_SUFFIXES = (".pyc", ".pyo")
SKIP_NAMES = frozenset({"local.settings.json", ".DS_Store"})
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class PackageError(Exception):
    """The package cannot be built, or would not run as deployed; the message says why."""


@dataclass(frozen=True)
class PackageReport:
    path: Path
    files: int
    bytes: int


def package_files(root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    """(source file, name in the zip) for everything deployed, sorted by name."""
    entries: list[tuple[Path, str]] = []
    for name in FILES:
        path = root / name
        if not path.is_file():
            raise PackageError(f"{name} is missing from {root}")
        entries.append((path, name))
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            raise PackageError(f"{folder}/ is missing from {root}")
        for path in base.rglob("*"):
            rel = path.relative_to(root)
            if not path.is_file() or SKIP_DIRS.intersection(rel.parts) or path.name in SKIP_NAMES \
                    or path.suffix in SKIP_SUFFIXES:
                continue
            entries.append((path, rel.as_posix()))
    yield from sorted(entries, key=lambda e: e[1])


def _top_level_imports(source: str, module: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def stray_imports(entries: list[tuple[Path, str]]) -> dict[str, set[str]]:
    """Packaged modules that import a project package the zip does not ship, with those packages."""
    shipped = {name.split("/")[0] for _, name in entries} | {Path(n).stem for n in FILES}
    stray: dict[str, set[str]] = {}
    for path, name in entries:
        if not name.endswith(".py"):
            continue
        missing = (_top_level_imports(path.read_text(encoding="utf-8"), name) & PROJECT_PACKAGES) - shipped
        if missing:
            stray[name] = missing
    return stray


def build_package(out: Path, root: Path = ROOT) -> PackageReport:
    """Write the deployment zip to ``out``; :class:`PackageError` if a deployed module imports
    something the zip does not carry."""
    entries = list(package_files(root))
    stray = stray_imports(entries)
    if stray:
        lines = [f"{module} imports {', '.join(sorted(pkgs))}" for module, pkgs in sorted(stray.items())]
        raise PackageError("deployed modules import packages that are not deployed:\n  " + "\n  ".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, name in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = path.read_bytes()
            total += len(data)
            zf.writestr(info, data)
    return PackageReport(path=out, files=len(entries), bytes=total)
