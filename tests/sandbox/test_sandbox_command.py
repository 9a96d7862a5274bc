"""The README's first command, as a user runs it: ``dualsync sandbox --rows 2000 --report FILE``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)  # one whole sandbox run; about 20 s on an idle 2-core machine


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("sandbox")
    report = work / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}  # the command sets its own
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "sandbox", "--rows", "2000", "--report", str(report),
         "--workdir", str(work / "run"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc, json.loads(report.read_text()) if report.exists() else None


def test_sandbox_exits_zero_and_writes_the_report(sandbox_run):
    proc, report = sandbox_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report is not None and report["converged"] is True


def test_report_has_every_catalog_map_with_its_figures(sandbox_run):
    from shared.catalog import load_catalog

    _, report = sandbox_run
    names = {m.name for m in load_catalog(ROOT / "maps")}
    assert set(report["maps"]) == names
    for name, m in report["maps"].items():
        assert {"dataverse_rows", "finance_rows", "converged", "dead_lettered", "replayed"} <= set(m), name
        assert m["converged"] is True, (name, m)
        assert m["dataverse_rows"] == m["finance_rows"], (name, m)


def test_rows_were_really_synced_both_ways(sandbox_run):
    _, report = sandbox_run
    maps = report["maps"]
    # Dataverse is the source of projects and actuals, Finance of workers and expenses: rows on both sides
    for name in ("projects", "project_tasks", "actuals", "workers", "expenses", "customers"):
        assert maps[name]["dataverse_rows"] > 0, name
    assert maps["actuals"]["initial_sync"]["written"] > 1000


def test_the_bad_value_was_dead_lettered_and_replayed(sandbox_run):
    _, report = sandbox_run
    projects = report["maps"]["projects"]
    assert projects["dead_lettered"] >= 1 and projects["replayed"] == projects["dead_lettered"]


def test_live_changes_reached_the_pipeline(sandbox_run):
    _, report = sandbox_run
    edited = [name for name, m in report["maps"].items() if m["live_edits"]]
    assert len(edited) >= 20  # one text edit per map and source side where the map copies free text
    assert any("before its project" in a for a in report["live"]["actions"])
    host = report["host"]
    assert host["http_requests"].get("202", 0) >= len(edited)
    assert host["completed"] > 0 and host["dead_lettered"] == 0
    # no notification was refused (the host's failures say why if one was)
    assert set(host["http_requests"]) == {"202"}, (host["http_requests"], host["last_failures"])


def test_the_table_names_every_map(sandbox_run):
    proc, report = sandbox_run
    for name in report["maps"]:
        assert name in proc.stdout
