"""``dualsync bench all [--json] [--full]``: every benchmark, one table and one JSON object.

Each bench module in ``bench/`` has ``run(quick) -> {"bench", "figures", "ratios", "goals"}``. This runs
them in turn (quick sizes unless ``--full``) and puts each goal beside the value it judges:

    {"bench": "all", "quick": true, "benches": {NAME: <that bench's JSON>, ...},
     "summary": [{"bench", "ratio", "value", "goal", "met"}, ...], "failed": [NAME, ...]}

A goal names a ratio (or, failing that, a figure) of its bench. Goals are written ``">= 0.8"``,
``"<= 100"``, ``">1500"``, ``"0"`` (equal), or a bare number (a floor: ``0.5`` means ``>= 0.5``).
A goal whose value is missing is not met. A bench that raises is kept in the output as failed
(``{"bench": NAME, "error": ...}`` and a summary row with ``met: false``) and the command exits 1:
one broken bench neither hides the others nor passes unnoticed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import operator
import pkgutil
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

import bench

RunBench = Callable[[bool], dict[str, Any]]
NAME = "all"
MAX_ERROR = 300

_GOAL = re.compile(r"\s*(>=|<=|==|=|>|<)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "=": operator.eq,
}


def registry() -> dict[str, RunBench]:
    """Every bench module's ``run`` by name (this module excluded), in name order."""
    names = sorted(i.name for i in pkgutil.iter_modules(bench.__path__)
                   if not i.name.startswith("_") and i.name != NAME)

    def runner(name: str) -> RunBench:
        def run(quick: bool) -> dict[str, Any]:
            result: dict[str, Any] = importlib.import_module(f"bench.{name}").run(quick=quick)
            return result
        return run

    return {name: runner(name) for name in names}


def meets(value: Any, goal: Any) -> bool:
    """Whether ``value`` meets ``goal`` (see the module docstring for the goal forms)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if isinstance(goal, int | float) and not isinstance(goal, bool):
        return value >= goal
    match = _GOAL.fullmatch(str(goal))
    if match is None:
        raise ValueError(f"goal {goal!r} is not of the form '>= 0.8', '<= 100', '>1500' or '0'")
    op = match.group(1) or ("==" if isinstance(goal, str) else ">=")
    return _OPS[op](float(value), float(match.group(2)))


def summary_rows(name: str, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per goal of a bench's result, each with the value it judges."""
    ratios, figures = result.get("ratios") or {}, result.get("figures") or {}
    rows = []
    for key, goal in (result.get("goals") or {}).items():
        value = ratios.get(key, figures.get(key))
        try:
            met = meets(value, goal)
        except ValueError:
            met = False
        rows.append({"bench": name, "ratio": key, "value": value, "goal": goal, "met": met})
    return rows


def run_all(benches: Mapping[str, RunBench], *, quick: bool = True) -> dict[str, Any]:
    """Run every bench; a failing one is recorded as failed, the others still run."""
    results: dict[str, Any] = {}
    summary: list[dict[str, Any]] = []
    failed: list[str] = []
    for name, run in benches.items():
        started = time.perf_counter()
        try:
            # a bench's own prints must not corrupt the one JSON object on stdout
            with contextlib.redirect_stdout(sys.stderr):
                result = run(quick)
        except Exception as exc:  # reported below, never hidden: the command exits 1
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            results[name] = {"bench": name, "error": error}
            summary.append({"bench": name, "ratio": None, "value": None, "goal": None, "met": False,
                            "error": error})
            failed.append(name)
            continue
        result.setdefault("seconds", round(time.perf_counter() - started, 2))
        results[name] = result
        summary.extend(summary_rows(name, result))
    return {"bench": NAME, "quick": quick, "benches": results, "summary": summary, "failed": failed}


def table(result: Mapping[str, Any]) -> Table:
    out = Table(title="dualsync bench all" + (" (quick)" if result.get("quick") else ""))
    for column in ("bench", "ratio", "value", "goal", "met?"):
        out.add_column(column, justify="right" if column in ("value", "goal") else "left")
    for row in result["summary"]:
        if row.get("error"):
            out.add_row(row["bench"], "[red]FAILED[/red]", "", "", f"[red]{row['error'][:80]}[/red]")
            continue
        met = "[green]yes[/green]" if row["met"] else "[red]no[/red]"
        out.add_row(row["bench"], row["ratio"], str(row["value"]), str(row["goal"]), met)
    return out


def run(quick: bool = True) -> dict[str, Any]:
    """``bench all`` as a bench module: quick sizes unless told otherwise."""
    return run_all(registry(), quick=quick)


def main(*, as_json: bool, full: bool, benches: Mapping[str, RunBench] | None = None) -> int:
    """The command: the table (on stderr with ``--json``), the JSON object; 1 if a bench failed."""
    result = run_all(registry() if benches is None else benches, quick=not full)
    Console(stderr=as_json).print(table(result))
    if as_json:
        print(json.dumps(result, default=str))
    return 1 if result["failed"] else 0
