"""``dualsync host``: run the function app locally (HTTP, Service Bus triggers on the broker, timers)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

DEFAULT_PORT = 7071  # Core Tools' default


def _say(text: str) -> None:
    typer.echo(text)
    sys.stdout.flush()  # a parent process reads the URL line as soon as it is written


def _load_local_settings() -> None:
    # As `func start` does: local.settings.json Values become app settings unless already set.
    from sandbox.host.appsettings import load_local_settings

    for name, value in load_local_settings(Path("local.settings.json")).items():
        os.environ.setdefault(name, value)


def _import_app() -> Any:
    from shared.catalog.problems import CatalogError
    from shared.settings import SettingsError

    # the worker imports function_app.py from the script root: here, the current directory
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        import function_app
    except ModuleNotFoundError as exc:
        if exc.name != "function_app":
            raise
        typer.echo("error: no function_app.py here; run dualsync host from the app's folder", err=True)
        raise typer.Exit(2) from None
    except (SettingsError, CatalogError) as exc:
        typer.echo(f"error: the function app did not load: {exc}", err=True)
        raise typer.Exit(2) from None
    return function_app.app


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event, every: float = 0.5) -> None:
    # A parent that dies (even SIGKILLed) leaves us reparented: stop instead of serving forever.
    while not stop.is_set():
        if os.getppid() != parent_pid:
            _say(f"parent process {parent_pid} is gone: stopping")
            stop.set()
            return
        await asyncio.sleep(every)


async def _run(port: int, keys: Path, broker: Path | None, timers: bool, sessions: int,
               parent_pid: int | None = None) -> None:
    from sandbox.host import DevHost

    host = DevHost(_import_app(), port=port, keys_path=keys, broker_path=broker, timers=timers,
                   sessions=sessions)
    await host.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_stop_when_orphaned(parent_pid, stop)) if parent_pid is not None else None
    try:
        _say(f"dev host at {host.url} (Ctrl-C to stop)")
        _say(f"keys: in {keys} (masterKey, functionKeys); send x-functions-key or ?code=")
        _say(f"broker: {host.broker_path}; timers {'on' if timers else 'off'}; up to {sessions} sessions at once")
        _say(f"functions ({len(host.inventory.functions)}):")
        for fn in host.inventory.functions:
            _say(f"  {fn.name:<34} {fn.describe(host.config.route_prefix)}")
        for skipped in host.inventory.skipped:
            _say(f"  {skipped.name:<34} NOT HOSTED: {skipped.reason}")
        await stop.wait()
        _say("stopping: letting running functions finish")
    finally:
        if watch is not None:
            watch.cancel()
        await host.stop()
    _say("stopped")


def register(app: typer.Typer) -> None:
    @app.command("host")
    def host_cmd(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="loopback port (0 picks a free one)"),
        no_timers: bool = typer.Option(False, "--no-timers", help="do not run timer triggers"),
        keys: Path = typer.Option(Path(".dualsync/host-keys.json"), "--keys",
                                  help="keys file (created with random keys, mode 0600, on first start)"),
        broker: Path | None = typer.Option(None, "--broker",
                                           help="broker file (default: DUALSYNC_BROKER_PATH)"),
        sessions: int = typer.Option(8, "--sessions", min=1, max=256,
                                     help="Service Bus sessions handled at once"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="log every invocation"),
        parent_pid: int | None = typer.Option(
            None, "--parent-pid", help="stop when this process (the one that started the host) is gone"),
    ) -> None:
        """Run function_app.app locally, as Core Tools would: HTTP triggers with function and admin keys,
        Service Bus triggers fed from the embedded broker (sessions, auto-complete, max deliveries),
        timers on their NCRONTAB schedules. Reads local.settings.json Values like `func start`.

        Example: dualsync host --port 7071 --keys .dualsync/host-keys.json
        """
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        _load_local_settings()
        try:
            asyncio.run(_run(port, keys, broker, not no_timers, sessions, parent_pid))
        except OSError as exc:  # e.g. the port is taken
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
