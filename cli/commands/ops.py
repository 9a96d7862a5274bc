"""``dualsync errors | pause | resume | status``: operate a running integration.

Against the configured state store and transport (settings from the environment, as the function app
reads them): the sandbox's SQLite files and local broker, or Azure Table Storage and Service Bus.
Exit codes: 0 done; 1 the action failed (nothing replayable, the store or broker failed); 2 a setting,
map name, error id or option is wrong.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from azure.core.exceptions import AzureError
from azure.servicebus.exceptions import ServiceBusError
from rich.console import Console
from rich.table import Column, Table

from shared.catalog import CatalogError, load_catalog
from shared.operations import InvalidArgument, NotReplayable, Operations, UnknownMap, backlog_probe
from shared.settings import SettingsError, load_settings
from shared.state.errors import NotFoundError, StateStoreError
from shared.transport.errors import TransportError

T = TypeVar("T")

errors_app = typer.Typer(help="List, show, replay and dismiss the errors the sync keeps.", no_args_is_help=True)

JsonOption = typer.Option(False, "--json", help="print JSON (for programs)")


class _SetupError(Exception):
    """Settings that do not give a usable state store or transport."""


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@asynccontextmanager
async def _operations() -> AsyncIterator[Operations]:
    from shared.state.factory import create_state_store
    from shared.transport.factory import create_transport

    settings = load_settings()
    catalog = load_catalog(settings.maps_dir)
    try:
        state = create_state_store(settings, table_prefix=settings.state_table_prefix)
        connection = settings.servicebus_connection.get_secret_value() if settings.servicebus_connection else None
        transport = create_transport(settings, servicebus_connection=connection,
                                     servicebus_namespace=settings.servicebus_namespace)
    except (StateStoreError, ValueError) as exc:
        raise _SetupError(str(exc)) from None
    probe = backlog_probe(settings, transport)
    try:
        await state.open()
        yield Operations(catalog, state, transport, settings.change_topic, backlog=probe)
    finally:
        close = getattr(probe, "close", None)
        if close is not None:
            await close()
        await transport.close()
        await state.close()


def _run(action: Callable[[Operations], Awaitable[T]]) -> T:
    """Run one action against the configured backends; typed failures become messages and exit codes."""

    async def go() -> T:
        async with _operations() as ops:
            return await action(ops)

    try:
        return asyncio.run(go())
    except SettingsError as exc:
        _fail(str(exc), 2)
    except _SetupError as exc:
        _fail(f"error: {exc}", 2)
    except CatalogError as exc:
        _fail(f"error: the catalog has {len(exc.problems)} problem(s); run `dualsync maps validate`", 2)
    except UnknownMap as exc:
        _fail(f"error: {exc}; `dualsync maps list` shows the names", 2)
    except NotFoundError as exc:
        _fail(f"error: {exc}; `dualsync errors list --status all` shows the ids", 2)
    except InvalidArgument as exc:
        _fail(f"error: {exc}", 2)
    except NotReplayable as exc:
        _fail(f"error: {exc}", 1)
    except (StateStoreError, TransportError, AzureError, ServiceBusError) as exc:
        _fail(f"error: the state store or broker failed: {type(exc).__name__}: {exc}", 1)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _console() -> Console:
    # Rich assumes 80 columns when not writing to a terminal; a piped table should not be truncated.
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


# --- errors -----------------------------------------------------------------------------------------
@errors_app.command("list")
def errors_list(
    map_name: str | None = typer.Option(None, "--map", help="only this map"),
    status: str = typer.Option("open", "--status", help="open, replayed, dismissed or all"),
    limit: int = typer.Option(100, "--limit", help="at most this many, newest first (1-1000)"),
    as_json: bool = JsonOption,
) -> None:
    """List kept errors, newest first.

    Example: dualsync errors list --map actuals --status open --json
    """
    rows = _run(lambda ops: ops.errors(map_name, status, limit))
    if as_json:
        _echo_json(rows)
        return
    table = Table(Column("id", no_wrap=True), Column("map", no_wrap=True), "key", "classification", "reason", "seen", "last seen", "status")
    for r in rows:
        table.add_row(r["id"], r["map"], r["key"], r["classification"], r["reason"], str(r["occurrences"]),
                      r["last_seen"][:19], r["status"])
    _console().print(table)
    typer.echo(f"{len(rows)} error(s)")


@errors_app.command("show")
def errors_show(error_id: str = typer.Argument(..., help="error id (from `errors list`)"),
                as_json: bool = JsonOption) -> None:
    """Show one error with its reason, description and kept payload.

    Example: dualsync errors show 3f2a9c0d1e4b5a6978a1b2c3d4e5f601
    """
    record = _run(lambda ops: ops.error(error_id))
    if as_json:
        _echo_json(record)
        return
    for field in ("id", "map", "key", "classification", "status", "reason", "description", "delivery_count",
                  "occurrences", "first_seen", "last_seen", "message_id", "session_id"):
        typer.echo(f"{field:<15} {record[field] if record[field] is not None else '-'}")
    typer.echo("payload:")
    typer.echo(json.dumps(record["payload"], indent=2))


@errors_app.command("replay")
def errors_replay(
    error_id: str | None = typer.Argument(None, help="error id to replay"),
    map_name: str | None = typer.Option(None, "--map", help="replay every open error of this map"),
    every: bool = typer.Option(False, "--all", help="replay every open error"),
    as_json: bool = JsonOption,
) -> None:
    """Publish kept notifications again; the sync reads the source's current state.

    Give exactly one of ID, --map NAME or --all. Exits 1 if any error could not be replayed.

    Example: dualsync errors replay --map actuals
    """
    if sum((error_id is not None, map_name is not None, every)) != 1:
        _fail("error: give exactly one of ID, --map NAME or --all", 2)
    if error_id is not None:
        one = _run(lambda ops: ops.replay(error_id))
        _echo_json(one) if as_json else typer.echo(f"replayed {one['id']} ({one['map']})")
        return
    result = _run(lambda ops: ops.replay_all(map_name))
    if as_json:
        _echo_json(result)
    else:
        typer.echo(f"replayed {len(result['replayed'])} error(s)")
        for skipped in result["not_replayable"]:
            typer.echo(f"not replayable (holds no readable notification): {skipped}", err=True)
    if result["not_replayable"]:
        raise typer.Exit(1)


@errors_app.command("dismiss")
def errors_dismiss(error_id: str = typer.Argument(..., help="error id to dismiss"),
                   as_json: bool = JsonOption) -> None:
    """Mark an error as dealt with; it is kept, with status dismissed.

    Example: dualsync errors dismiss 3f2a9c0d1e4b5a6978a1b2c3d4e5f601
    """
    result = _run(lambda ops: ops.dismiss(error_id))
    _echo_json(result) if as_json else typer.echo(f"dismissed {result['id']} ({result['map']})")


# --- pause, resume, status --------------------------------------------------------------------------
def pause(name: str = typer.Argument(..., help="map name, e.g. actuals"),
          reason: str = typer.Option("", "--reason", help="why, shown by `dualsync status`"),
          as_json: bool = JsonOption) -> None:
    """Pause a map: its notifications are kept and handled, in order, after resume.

    Example: dualsync pause actuals --reason "Finance upgrade"
    """
    result = _run(lambda ops: ops.pause(name, reason))
    _echo_json(result) if as_json else typer.echo(f"{name}: paused ({result['reason']})")


def resume(name: str = typer.Argument(..., help="map name, e.g. actuals"), as_json: bool = JsonOption) -> None:
    """Resume a paused map; what arrived meanwhile is handled in order.

    Example: dualsync resume actuals
    """
    result = _run(lambda ops: ops.resume(name))
    _echo_json(result) if as_json else typer.echo(f"{name}: running")


def status(as_json: bool = JsonOption) -> None:
    """Per map: running or paused, last success, open errors, backlog ("?" where the broker cannot tell).

    Example: dualsync status --json
    """
    result = _run(lambda ops: ops.status())
    if as_json:
        _echo_json(result)
        return
    table = Table(Column("map", no_wrap=True), "state", "last success", "open errors", "active", "scheduled",
                  "dead letters")
    for name, m in result["maps"].items():
        state = m["state"] if m["state"] == "running" else f"[bold yellow]{m['state']}[/] {m['reason']}"
        backlog = m["backlog"]
        table.add_row(name, state, (m["last_success"] or "-")[:19], str(m["open_errors"]),
                      _count(backlog["active"]), _count(backlog["scheduled"]), _count(backlog["dead_letters"]))
    _console().print(table)
    typer.echo(f"{len(result['maps'])} maps, {len(result['paused'])} paused, {result['open_errors']} open error(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(errors_app, name="errors")
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("status")(status)
