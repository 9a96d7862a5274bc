"""``dualsync sandbox``: the main job on the embedded default (see sandbox/run/orchestrate.py)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from sandbox.run.environment import DEFAULT_WORKDIR


def register(app: typer.Typer) -> None:
    @app.command("sandbox")
    def sandbox(
        rows: int = typer.Option(2000, "--rows", min=100, help="demo rows loaded into the two emulators"),
        report: Path | None = typer.Option(None, "--report", help="write the JSON report here"),
        seed: int = typer.Option(7, "--seed", help="seed of the demo data"),
        workdir: Path = typer.Option(DEFAULT_WORKDIR, "--workdir",
                                     help="folder for the run's SQLite files and host keys (wiped first)"),
        timeout: float = typer.Option(180.0, "--timeout", min=5, help="seconds to wait for the pipeline to drain"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars, only the final table"),
        scenario: list[str] | None = typer.Option(
            None, "--scenario", help="run only this business-flow scenario (repeatable; 'none' for none; "
                                     "default: all of them, see docs/scenarios.md)"),
    ) -> None:
        """Run the whole sync locally: emulators with demo data, broker, dev host, initial sync of every
        map, live changes in both systems (a child before its parent, a bad value replayed after a fix),
        the Project Operations business-flow scenarios, then reconcile. Exit 0 only if every map converged
        and every scenario passed.

        Example: dualsync sandbox --rows 2000 --report sandbox-report.json --scenario expense
        """
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from sandbox.run.orchestrate import Sandbox, SandboxOptions
        from sandbox.scenarios import UnknownScenario, select

        try:
            select(scenario or None)
        except UnknownScenario as exc:
            raise typer.BadParameter(str(exc), param_hint="--scenario") from None

        console = Console(stderr=True, quiet=quiet)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]:>9} rows/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, disable=quiet)
        tasks: dict[str, Any] = {}

        def on_progress(p: Any) -> None:
            if p.map not in tasks:
                tasks[p.map] = bars.add_task(p.map, total=p.total, rate="")
            bars.update(tasks[p.map], completed=p.read, total=p.total if p.total is not None else p.read,
                        rate=f"{p.rate:,.0f}")

        def on_step(text: str) -> None:
            console.print(f"[bold]>[/bold] {text}")

        options = SandboxOptions(rows=rows, seed=seed, workdir=workdir, settle_timeout=timeout,
                                 scenarios=list(scenario) if scenario else None)
        with bars:
            result = Sandbox(options, step=on_step, progress=on_progress).run()
        _print_table(result.report)
        if report is not None:
            report.write_text(json.dumps(result.report, indent=2, default=str))
            typer.echo(f"report written to {report}")
        raise typer.Exit(0 if result.converged else 1)


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sandbox: {report['rows']:,} demo rows")
    for column in ("map", "source", "dataverse rows", "finance rows", "converged", "dead-lettered", "replayed",
                   "drift (missing/extra/different)"):
        table.add_column(column, justify="left" if column in ("map", "source") else "right")
    for name, m in report["maps"].items():
        table.add_row(name, m["source"], f"{m['dataverse_rows']:,}", f"{m['finance_rows']:,}",
                      "yes" if m["converged"] else "[red]NO[/red]", str(m["dead_lettered"]), str(m["replayed"]),
                      f"{m['missing']}/{m['extra']}/{m['different']}")
    # not a terminal (CI logs, a pipe): wide enough that no map name is cut
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    if report.get("scenarios"):
        flows = Table(title="business-flow scenarios")
        for column in ("scenario", "passed", "checks", "first failed check"):
            flows.add_column(column)
        for name, sc in report["scenarios"].items():
            failed = [c for c in sc["checks"] if not c["passed"]]
            first = f"{failed[0]['name']}: {failed[0]['detail'][:120]}" if failed else ""
            flows.add_row(name, "yes" if sc["passed"] else "[red]NO[/red]",
                          f"{len(sc['checks']) - len(failed)}/{len(sc['checks'])}", first)
        Console(width=None if sys.stdout.isatty() else 160).print(flows)
