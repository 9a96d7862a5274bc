"""``dualsync bench NAME [--json]``: run one benchmark module from ``bench/``."""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any

import typer

import bench


def available() -> list[str]:
    return sorted(i.name for i in pkgutil.iter_modules(bench.__path__) if not i.name.startswith("_"))


def run_bench(name: str, quick: bool = False) -> dict[str, Any]:
    """Run ``bench/<name>.py``'s ``run(quick=...)``; it returns {"bench", "figures", "ratios", ...}."""
    name = name.replace("-", "_")  # `dualsync bench initial-sync` names bench/initial_sync.py
    if name not in available():
        raise KeyError(name)
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = module.run(quick=quick)
    return result


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        name: str = typer.Argument(..., help="benchmark name (see --list)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
        quick: bool = typer.Option(False, "--quick", help="smaller sizes, for smoke tests"),
        full: bool = typer.Option(False, "--full", help="bench all: full sizes (it runs quick ones by default)"),
    ) -> None:
        """Run a benchmark and print its figures and ratios.

        Example: dualsync bench mapping --json
        """
        if name == "all":  # every benchmark, one table and one JSON object (bench/all.py)
            from bench import all as all_benches
            raise typer.Exit(all_benches.main(as_json=as_json, full=full))
        try:
            result = run_bench(name, quick=quick)
        except KeyError:
            typer.echo(f"error: unknown benchmark {name!r}; available: {', '.join(available())}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(result))
            return
        typer.echo(f"bench {result['bench']}")
        for section in ("figures", "ratios"):
            for key, value in result.get(section, {}).items():
                goal = result.get("goals", {}).get(key)
                typer.echo(f"  {key:<28} {value}" + (f"   (goal {goal})" if goal is not None else ""))
