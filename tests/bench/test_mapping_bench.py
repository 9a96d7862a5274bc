"""The mapping benchmark runs and reports in the DESIGN.md format (figures are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

from bench import mapping


def test_handwritten_baselines_build_the_same_rows_as_the_engine():
    # run() refuses to report a ratio if engine and baseline disagree on any row
    result = mapping.run(quick=True)
    assert result["bench"] == "mapping"
    assert set(result["ratios"]) == {"projects_vs_handwritten", "actuals_vs_handwritten", "vs_handwritten"}
    assert result["figures"]["projects_engine_rows_per_s"] > 0


def test_cli_prints_one_json_object():
    run = subprocess.run([sys.executable, "-m", "cli", "bench", "mapping", "--json", "--quick"],
                         capture_output=True, text=True, check=True)
    payload = json.loads(run.stdout)
    assert payload["bench"] == "mapping" and "vs_handwritten" in payload["ratios"]


def test_unknown_benchmark_is_a_clear_error():
    run = subprocess.run([sys.executable, "-m", "cli", "bench", "nope"], capture_output=True, text=True)
    assert run.returncode == 2 and "unknown benchmark 'nope'" in run.stderr
