"""Project Operations business flows end to end (issue 7), run through the real pipeline.

Each scenario drives both systems over HTTP, lets the sync carry the changes (``Pipeline.wait``), runs
the business flows Finance and Project Operations would run, and ends by checking the final state in
both systems. ``run_scenarios`` runs the named ones (all by default) and never raises: a scenario that
breaks ends with a failed check saying where.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from sandbox.scenarios import estimates, expense, failures, proforma, setup, time_actual, vendor_invoice
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Check, Checks, ScenarioResult

Scenario = Callable[[Pipeline, Checks], Awaitable[None]]

SCENARIOS: dict[str, Scenario] = {
    "setup": setup.run,
    "time-actual": time_actual.run,
    "expense": expense.run,
    "vendor-invoice": vendor_invoice.run,
    "proforma-invoice": proforma.run,
    "estimates": estimates.run,
    "missing-exchange-rate": failures.missing_exchange_rate,
    "missing-project-category": failures.missing_project_category,
    "expense-summary-task": failures.expense_summary_task,
    "vendor-invoice-unknown-unit-or-vendor": vendor_invoice.unknown_unit_or_vendor,
}


class UnknownScenario(ValueError):
    def __init__(self, names: Iterable[str]) -> None:
        super().__init__(f"unknown scenario(s): {', '.join(names)}; known: {', '.join(SCENARIOS)}")


def select(names: Iterable[str] | None) -> list[str]:
    """The scenarios to run: all for ``None``, none for ``["none"]``, else the given ones in order."""
    if names is None:
        return list(SCENARIOS)
    wanted = [n for n in names if n != "none"]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise UnknownScenario(unknown)
    return list(dict.fromkeys(wanted))


async def run_scenario(name: str, pipeline: Pipeline) -> ScenarioResult:
    checks = Checks()
    started = time.perf_counter()
    try:
        await SCENARIOS[name](pipeline, checks)
    except Exception as exc:
        checks.check("scenario ran to the end", False, f"{type(exc).__name__}: {exc}")
    passed = bool(checks.items) and all(c.passed for c in checks.items)
    return ScenarioResult(name, passed, checks.items, time.perf_counter() - started)


async def run_scenarios(pipeline: Pipeline, names: Iterable[str] | None = None,
                        step: Callable[[str], None] | None = None) -> dict[str, ScenarioResult]:
    results: dict[str, ScenarioResult] = {}
    for name in select(names):
        if step:
            step(f"scenario {name}")
        results[name] = await run_scenario(name, pipeline)
    return results


__all__ = ["SCENARIOS", "Check", "Pipeline", "ScenarioResult", "UnknownScenario", "run_scenarios", "select"]
