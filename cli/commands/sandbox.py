"""``dualsync sandbox``: the main job on the embedded default.

The full sandbox (emulators with demo data, broker, dev host, initial sync, live changes, convergence
report) is issue 6 and not built yet. Until then this command does the part that exists: it loads,
validates and lists the catalog, compiles every map, and exits non-zero if anything is wrong.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cli.commands.maps import MapsDir, _load, summary
from shared.mapping import compile_catalog


def register(app: typer.Typer) -> None:
    @app.command("sandbox")
    def sandbox(
        rows: int = typer.Option(2000, "--rows", help="demo rows (used once the full sandbox exists)"),
        report: Path | None = typer.Option(None, "--report", help="write a JSON report here"),
        maps_dir: Path = MapsDir,
    ) -> None:
        """Run the local sandbox. For now: validate, compile and list the catalog.

        Example: dualsync sandbox --report report.json
        """
        started = time.perf_counter()
        catalog = _load(maps_dir)
        compiled = compile_catalog(catalog)
        typer.echo(f"catalog: {len(catalog)} maps valid and compiled in "
                   f"{(time.perf_counter() - started) * 1000:.0f} ms")
        for m in catalog:
            s = summary(m)
            typer.echo(f"  {s['name']:<26} {s['direction']:<21} {s['dataverse_entity_set']:<36} "
                       f"{s['finance_entity_set']}")
        typer.echo("note: the end-to-end sandbox sync (emulators, broker, dev host) is not built yet; "
                   "this run checked the catalog only.")
        if report is not None:
            import json

            report.write_text(json.dumps({"maps": {n: {"compiled": True} for n in compiled},
                                          "complete": False}, indent=2))
