"""``dualsync bench all``: a fake registry of two tiny benches, and one real quick run of a cheap one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import all as all_benches
from bench import mapping
from cli.main import app


def fast(quick: bool) -> dict[str, Any]:
    print("noise a bench prints")  # must not land in the JSON on stdout
    return {"bench": "fast", "figures": {"rows_per_s": 1200.0 if quick else 9000.0, "failed_rows": 0},
            "ratios": {"vs_naive": 25.0, "vs_floor": 0.5}, "goals": {"vs_naive": ">= 20", "vs_floor": ">= 0.8",
                                                                    "failed_rows": "0", "absent": "> 1"}}


def broken(quick: bool) -> dict[str, Any]:
    raise RuntimeError("emulator did not start")


FAKE = {"broken": broken, "fast": fast}


@pytest.mark.parametrize(("value", "goal", "met"), [
    (0.8, ">= 0.8", True), (0.79, ">= 0.8", False), (1501, ">1500", True), (1500, ">1500", False),
    (100, "<= 100", True), (101, "<= 100", False), (0, "0", True), (1, "0", False), (0.6, 0.5, True),
    (0.4, 0.5, False), (None, ">= 1", False), (float("nan"), ">= 0", False), (True, ">= 0", False),
    (2, "== 2", True), (1e-3, "< 1e-2", True),
])
def test_goal_forms(value, goal, met):
    assert all_benches.meets(value, goal) is met


def test_an_unreadable_goal_is_an_error_naming_it():
    with pytest.raises(ValueError, match="about ten"):
        all_benches.meets(1, "about ten")


def test_every_goal_beside_its_value_and_a_failing_bench_reported_not_hidden():
    result = all_benches.run_all(FAKE, quick=True)
    assert result["bench"] == "all" and result["failed"] == ["broken"]
    assert result["benches"]["broken"] == {"bench": "broken", "error": "RuntimeError: emulator did not start"}
    assert result["benches"]["fast"]["figures"]["rows_per_s"] == 1200.0
    rows = {(r["bench"], r["ratio"]): r for r in result["summary"]}
    assert rows[("broken", None)]["met"] is False
    assert {k[1]: (r["value"], r["met"]) for k, r in rows.items() if k[0] == "fast"} == {
        "vs_naive": (25.0, True), "vs_floor": (0.5, False), "failed_rows": (0, True), "absent": (None, False)}


def test_full_sizes_on_request():
    assert all_benches.run_all({"fast": fast}, quick=False)["benches"]["fast"]["figures"]["rows_per_s"] == 9000.0


def test_the_registry_is_every_bench_module_but_itself():
    names = set(all_benches.registry())
    assert "all" not in names and {"mapping", "connectors", "emulator", "initial_sync"} <= names


def test_cli_prints_one_json_object_and_exits_1_when_a_bench_failed(monkeypatch):
    monkeypatch.setattr(all_benches, "registry", lambda: FAKE)
    result = CliRunner().invoke(app, ["bench", "all", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)  # stdout is the JSON object alone; the table and noise go to stderr
    assert payload["failed"] == ["broken"] and payload["quick"] is True
    assert "FAILED" in result.stderr and "vs_naive" in result.stderr and "noise a bench prints" in result.stderr


def test_cli_table_without_json_and_exit_0_when_all_ran(monkeypatch):
    monkeypatch.setattr(all_benches, "registry", lambda: {"fast": fast})
    result = CliRunner().invoke(app, ["bench", "all", "--full"])
    assert result.exit_code == 0, result.output
    for cell in ("fast", "vs_naive", ">= 20", "yes", "no"):
        assert cell in result.stdout


def test_a_real_quick_run_of_the_mapping_bench():
    result = all_benches.run_all({"mapping": lambda quick: mapping.run(quick=quick)}, quick=True)
    assert result["failed"] == []
    [row] = result["summary"]
    assert (row["bench"], row["ratio"], row["goal"]) == ("mapping", "vs_handwritten", mapping.GOAL_VS_HANDWRITTEN)
    assert row["value"] == result["benches"]["mapping"]["ratios"]["vs_handwritten"] > 0
    assert row["met"] is (row["value"] >= mapping.GOAL_VS_HANDWRITTEN)
