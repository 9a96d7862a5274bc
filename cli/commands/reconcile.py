"""``dualsync reconcile [--map NAME]... [--fix] [--json] [--examples N]``.

Exit codes: 0 no drift; 1 drift found (with --fix: repairs published); 2 bad settings or arguments;
3 the comparison stopped (a service unreachable, rows out of key order).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from cli.commands.initial_sync import EXIT_ROWS_FAILED, EXIT_STOPPED, EXIT_USAGE, load_runtime, open_state


async def _reconcile(maps: list[str], fix: bool, examples: int) -> list[dict[str, Any]]:
    from shared.bulk import BulkContext
    from shared.bulk.reconcile import Reconciler
    from shared.connectors.http import registry
    from shared.transport.factory import create_transport

    runtime = load_runtime()
    settings = runtime.settings
    state = await open_state(settings)
    transport = None
    try:
        if fix:
            connection = settings.servicebus_connection.get_secret_value() if settings.servicebus_connection else None
            transport = create_transport(settings, servicebus_connection=connection,
                                         servicebus_namespace=settings.servicebus_namespace)
        ctx = BulkContext.from_settings(settings, runtime.compiled, state)
        drifts = await Reconciler(ctx, examples=examples).run(maps or None, fix=fix, transport=transport)
        return [d.as_dict() for d in drifts]
    finally:
        if transport is not None:
            await transport.close()
        await state.close()
        await registry.aclose()


def register(app: typer.Typer) -> None:
    @app.command("reconcile")
    def reconcile(
        maps: list[str] = typer.Option([], "--map", "-m", help="map name (repeat; default: every map)"),
        fix: bool = typer.Option(False, "--fix", help="publish notifications that repair missing and different rows"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
        examples: int = typer.Option(5, "--examples", min=0, max=1000, help="example keys per kind of drift"),
    ) -> None:
        """Compare both sides of each map by integration key: missing, extra and different rows.

        Extra rows are reported, never deleted. Exit 0: no drift; 1: drift found; 2: bad settings
        or arguments; 3: the comparison stopped.

        Example: dualsync reconcile --map customers --examples 10 --fix
        """
        from shared.bulk import InitialSyncPlanError
        from shared.bulk.reconcile import ReconcileOrderError
        from shared.connectors.errors import ConnectorError

        try:
            result = asyncio.run(_reconcile(maps, fix, examples))
        except InitialSyncPlanError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except (ConnectorError, ReconcileOrderError, OSError) as exc:
            typer.echo(f"error: reconcile stopped: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(EXIT_STOPPED) from None
        drift = sum(d["missing"] + d["extra"] + d["different"] for d in result)
        if as_json:
            typer.echo(json.dumps({"maps": {d["map"]: d for d in result}, "drift": drift}))
        else:
            typer.echo(f"{'map':<26} {'compared':>9} {'missing':>8} {'extra':>8} {'different':>9} {'fixed':>6}")
            for d in result:
                typer.echo(f"{d['map']:<26} {d['compared']:>9,} {d['missing']:>8,} {d['extra']:>8,} "
                           f"{d['different']:>9,} {d['fixed']:>6,}")
                for kind in ("missing", "extra", "different"):
                    for ex in d["examples"][kind]:
                        shown = ex if isinstance(ex, str) else f"{ex['key']} fields {', '.join(ex['fields'])}"
                        typer.echo(f"    {kind:<9} {shown}")
        if drift:
            raise typer.Exit(EXIT_ROWS_FAILED)
