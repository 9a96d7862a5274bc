"""Each Project Operations business flow end to end through the dev host (issue 7), read from one
sandbox run: the report's ``scenarios`` field, every check of every scenario, and the specifics."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.run.orchestrate import SandboxResult
from sandbox.scenarios import SCENARIOS, UnknownScenario, select


def scenario(run: SandboxResult, name: str) -> dict[str, Any]:
    report = run.report["scenarios"][name]
    failed = [c for c in report["checks"] if not c["passed"]]
    assert report["passed"], f"{name} failed: {failed}"
    assert report["checks"] and not failed
    return report


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert found, f"no check {name!r}: {[c['name'] for c in report['checks']]}"
    return found[0]


def test_report_has_every_scenario_and_the_run_passes(sandbox_run: SandboxResult):
    assert set(sandbox_run.report["scenarios"]) == set(SCENARIOS)
    assert all(set(s) >= {"passed", "checks"} for s in sandbox_run.report["scenarios"].values())
    assert sandbox_run.converged == (all(m["converged"] for m in sandbox_run.report["maps"].values())
                                     and all(s["passed"] for s in sandbox_run.report["scenarios"].values()))
    assert all(m["converged"] for m in sandbox_run.report["maps"].values())


def test_setup(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "setup")
    assert "USPM" in check(r, "legal entities: the same codes and names in both systems")["detail"]
    assert "'Fee'" in check(r, "Finance: one shared category per transaction type, traced to the Dataverse category")[
        "detail"]
    assert "'uspm'" in check(r, "Finance: the resource role copied to every legal entity")["detail"]


def test_time_actual_lifecycle(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "time-actual")
    assert check(r, "cost: Finance voucher")["detail"].startswith("PRJV-")
    rate = check(r, "cost: Dataverse actual has the voucher, amount (accounting currency) and rate")["detail"]
    assert "PRJV-" in rate and ", 1.0)" not in rate  # a real exchange rate applied, not 1


def test_expense_lifecycle(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "expense")
    assert check(r, "Finance: the expense integration account is debited at posting and cleared by the journal")[
        "detail"] == "(2, 0.0)"


def test_vendor_invoice_lifecycle(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "vendor-invoice")
    assert check(r, "Finance: invoice posted with an AP voucher")["detail"] == "('Posted', 'APV-')"


def test_proforma_invoice_lifecycle(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "proforma-invoice")
    assert "192350002" in check(r, "Dataverse: the posted invoice is back (status, amount, tax)")["detail"]


def test_estimates(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "estimates")
    assert check(r, "Finance hour forecast follows the change")["detail"] == "(56.0, 4480.0)"
    assert check(r, "Finance: the item forecast of the deleted material estimate is gone")["passed"]


@pytest.mark.parametrize(("name", "map_reason"), [
    ("missing-exchange-rate", "No exchange rate from "),
    ("missing-project-category", "does not exist in legal entity"),
    ("expense-summary-task", "is a summary task"),
])
def test_failure_lands_in_the_error_store_and_replays_after_the_fix(sandbox_run: SandboxResult, name: str,
                                                                    map_reason: str):
    r = scenario(sandbox_run, name)
    assert map_reason in check(r, "the error names the cause")["detail"]
    assert check(r, "replayed")["passed"] and check(r, "the replay succeeded (no open error left)")["passed"]


def test_unknown_unit_or_vendor_on_a_vendor_invoice_lands_in_the_error_store_and_replays(sandbox_run: SandboxResult):
    r = scenario(sandbox_run, "vendor-invoice-unknown-unit-or-vendor")
    assert "Unit of measure 'U" in check(r, "the invoice names the unknown unit and the line")["detail"]
    for what, table in (("unit", "uoms (name)"), ("vendor", "accounts (accountnumber, msdyn_company)")):
        assert check(r, f"{what}: classified validation (not retried)")["detail"] == "'validation'"
        reason = check(r, f"{what}: the error names the value and the table")["detail"]
        assert f"not found in Dataverse {table}" in reason and "create it in Dataverse" in reason
        assert check(r, f"{what}: replayed")["passed"]
        assert check(r, f"{what}: the replay succeeded (no open error left)")["passed"]
    assert check(r, "unit: after the replay the line is in Dataverse with its unit")["passed"]
    assert check(r, "vendor: after the replay the invoice is in Dataverse with its vendor account")["passed"]


def test_selecting_scenarios():
    assert select(None) == list(SCENARIOS)
    assert select(["none"]) == []
    assert select(["expense", "setup", "expense"]) == ["expense", "setup"]
    with pytest.raises(UnknownScenario, match="nope"):
        select(["nope"])
