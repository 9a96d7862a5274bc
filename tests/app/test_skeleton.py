"""The deployable skeleton: function app, settings, host.json, local settings, packaging files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from shared.settings import PREFIX, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_function_app_exposes_app_with_blueprints(app_functions):
    import function_app

    assert isinstance(function_app.app, func.FunctionApp)
    assert "health" in app_functions


def test_health_reports_the_catalog():
    from functions.health import health

    resp = health.build().get_user_function()(func.HttpRequest("GET", "/api/health", body=b""))
    body = json.loads(resp.get_body())
    assert resp.status_code == 200
    assert body["maps"] == len(body["catalog"]) > 0


def test_missing_settings_are_named(monkeypatch):
    for key in ("DATAVERSE_URL", "FINANCE_URL"):
        monkeypatch.delenv(PREFIX + key, raising=False)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "DUALSYNC_DATAVERSE_URL: missing (expected: Dataverse environment URL" in text
    assert "DUALSYNC_FINANCE_URL: missing" in text


def test_invalid_settings_are_named(monkeypatch):
    monkeypatch.setenv("DUALSYNC_MAX_CONCURRENCY", "zero")
    monkeypatch.setenv("DUALSYNC_DATAVERSE_URL", "https://org.crm.dynamics.com/api/data")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "DUALSYNC_MAX_CONCURRENCY: Input should be a valid integer" in str(info.value)
    assert "DUALSYNC_DATAVERSE_URL" in str(info.value) and "without a path" in str(info.value)


def test_auth_mode_needs_its_settings(monkeypatch):
    monkeypatch.setenv("DUALSYNC_AUTH_MODE", "client_secret")
    monkeypatch.delenv("DUALSYNC_CLIENT_SECRET", raising=False)
    with pytest.raises(SettingsError, match="DUALSYNC_CLIENT_SECRET: required when DUALSYNC_AUTH_MODE=client_secret"):
        load_settings()


def test_secret_is_not_shown(monkeypatch):
    monkeypatch.setenv("DUALSYNC_AUTH_MODE", "client_secret")
    monkeypatch.setenv("DUALSYNC_TENANT_ID", "t")
    monkeypatch.setenv("DUALSYNC_CLIENT_ID", "c")
    monkeypatch.setenv("DUALSYNC_CLIENT_SECRET", "s3cr3t-value")
    settings = load_settings()
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings.model_dump())


def test_start_up_fails_clearly_without_settings(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "DUALSYNC_DATAVERSE_URL: missing" in run.stderr


def test_local_settings_sample_documents_every_setting():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    missing = [PREFIX + name.upper() for name in Settings.model_fields if PREFIX + name.upper() not in sample]
    assert missing == []
    readme = (ROOT / "README.md").read_text()
    undocumented = [PREFIX + n.upper() for n in Settings.model_fields if f"`{PREFIX}{n.upper()}" not in readme]
    assert undocumented == []


def test_host_json_uses_bundle_4_and_flat_service_bus_settings():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    sb = host["extensions"]["serviceBus"]
    assert "messageHandlerOptions" not in sb and "sessionHandlerOptions" not in sb
    assert sb["autoCompleteMessages"] is True


def test_funcignore_keeps_dev_folders_out():
    ignored = (ROOT / ".funcignore").read_text().split()
    for folder in ("sandbox/", "bench/", "tests/", "cli/"):
        assert folder in ignored


def test_requirements_match_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert sorted(reqs) == sorted(project)


def test_readme_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1: lines.index("```sh") + 3]
    assert block[0].startswith("./dev sandbox") and block[1].startswith("./dev test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 0 */5 * * * *", ""])
def test_pull_schedule_must_be_six_field_ncrontab(monkeypatch, schedule):
    monkeypatch.setenv(f"{PREFIX}PULL_SCHEDULE", schedule or " ")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"{PREFIX}PULL_SCHEDULE" in str(info.value)
    assert "six fields" in str(info.value)
