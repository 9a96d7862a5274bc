"""``dualsync initial-sync [--map NAME]... [--resume] [--distributed [--range-rows N]] [--json]``.

Exit codes: 0 every row written; 1 some rows failed (kept in the error store: ``dualsync errors
list``); 2 bad settings or arguments; 3 the run stopped early (a service unreachable, ...): run again
with ``--resume`` to continue from the last page written.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from shared.catalog import CatalogError

EXIT_ROWS_FAILED, EXIT_USAGE, EXIT_STOPPED = 1, 2, 3
RANGE_ROWS = 50_000  # shared.bulk.distributed.RANGE_ROWS, without importing the engine for --help


def load_runtime() -> Any:
    """The process runtime, or exit 2 naming each bad setting."""
    from shared.runtime import get_runtime
    from shared.settings import SettingsError

    try:
        return get_runtime()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except CatalogError as exc:
        typer.echo(f"error: the map catalog is invalid ({len(exc.problems)} problem(s)); "
                   "run `dualsync maps validate`", err=True)
        raise typer.Exit(EXIT_USAGE) from None


async def open_state(settings: Any) -> Any:
    from shared.state.factory import create_state_store

    state = create_state_store(settings, table_prefix=settings.state_table_prefix)
    await state.open()
    return state


class Bars:
    """A rich progress bar per map: rows, rate and ETA (total from $count when the service gave one)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.fields[map]:<26}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9} rows/s"), TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, p: Any) -> None:
        if p.map not in self.tasks:
            self.tasks[p.map] = self.progress.add_task(p.map, total=p.total, map=p.map, rate="0", failed=0)
        total = p.total if p.total is not None else (p.read if p.done else None)
        self.progress.update(self.tasks[p.map], completed=p.read, total=total, rate=f"{p.rate:,.0f}",
                             failed=p.failed)


async def _local(maps: list[str], resume: bool, as_json: bool) -> dict[str, Any]:
    from shared.bulk import BulkContext, InitialSync
    from shared.connectors.http import registry

    runtime = load_runtime()
    state = await open_state(runtime.settings)
    try:
        ctx = BulkContext.from_settings(runtime.settings, runtime.compiled, state)
        if as_json:
            summary = await InitialSync(ctx).run(maps or None, resume=resume)
        else:
            bars = Bars()
            with bars.progress:
                summary = await InitialSync(ctx, progress=bars).run(maps or None, resume=resume)
        return summary.as_dict()
    finally:
        await state.close()
        await registry.aclose()


async def _distributed(maps: list[str], range_rows: int | None) -> dict[str, Any]:
    from shared.bulk.distributed import publish_work
    from shared.sync.factory import get_service

    runtime = load_runtime()
    service = await get_service()
    try:
        rows = range_rows if range_rows is not None else runtime.settings.initial_sync_range_rows
        return await publish_work(service, maps, range_rows=rows)
    finally:
        await service.transport.close()
        await service.state.close()


def register(app: typer.Typer) -> None:
    @app.command("initial-sync")
    def initial_sync(
        maps: list[str] = typer.Option([], "--map", "-m", help="map name (repeat; default: every map)"),
        resume: bool = typer.Option(False, "--resume", help="continue from each map's last checkpoint"),
        distributed: bool = typer.Option(False, "--distributed",
                                         help="publish work items for the function app instead of syncing here"),
        range_rows: int | None = typer.Option(None, "--range-rows", min=1, metavar="N",
                                              help="with --distributed: cut a legal entity's rows into key ranges "
                                                   "of about N rows, one work item each (default: the setting "
                                                   f"DUALSYNC_INITIAL_SYNC_RANGE_ROWS, {RANGE_ROWS:,})"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON summary instead of progress bars"),
    ) -> None:
        """Copy every row of the chosen maps from their master side, dependencies first.

        Streams pages, writes batches concurrently, checkpoints every page; a stopped run continues
        with --resume. Exit 0: all written; 1: rows failed (see `dualsync errors list`); 2: bad
        settings or arguments; 3: the run stopped early (run again with --resume).

        --distributed publishes work items (legal entity and key range) to the work queue instead:
        the function app's instances process them in parallel, each under its own checkpoint.

        Example: dualsync initial-sync --map legal_entities --map customers --json

        Example: dualsync initial-sync --distributed --map actuals --range-rows 50000
        """
        from shared.bulk import InitialSyncPlanError
        from shared.connectors.errors import ConnectorError

        try:
            if distributed:
                result = asyncio.run(_distributed(maps, range_rows))
                typer.echo(json.dumps(result) if as_json else
                           f"published {result['items']} work item(s) to {result['queue']} (run {result['run']}; "
                           f"{sum(result['ranged'].values())} of them key ranges)")
                return
            result = asyncio.run(_local(maps, resume, as_json))
        except InitialSyncPlanError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except (ConnectorError, OSError) as exc:
            typer.echo(f"error: the initial sync stopped: {type(exc).__name__}: {exc}; "
                       "run again with --resume", err=True)
            raise typer.Exit(EXIT_STOPPED) from None
        if as_json:
            typer.echo(json.dumps(result))
        else:
            for name, m in result["maps"].items():
                typer.echo(f"{name:<26} read {m['read']:>9,}  written {m['written']:>9,}  failed {m['failed']:>6,}"
                           f"  {m['rows_per_second']:>9,.0f} rows/s")
            typer.echo(f"total: read {result['read']:,}, written {result['written']:,}, failed {result['failed']:,}")
        if result["failed"]:
            typer.echo(f"{result['failed']} row(s) failed; see `dualsync errors list`", err=True)
            raise typer.Exit(EXIT_ROWS_FAILED)
