"""``dualsync emulator dataverse|finance``: run one service emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path

import typer
import uvicorn

DEFAULT_PORTS = {"dataverse": 5081, "finance": 5082}
SERVICE_ROOTS = {"dataverse": "/api/data/v9.2/", "finance": "/data/"}


class Service(StrEnum):
    dataverse = "dataverse"
    finance = "finance"


def register(app: typer.Typer) -> None:
    @app.command("emulator")
    def emulator_cmd(
        service: Service = typer.Argument(..., help="which service to emulate"),
        port: int = typer.Option(0, "--port", help="TCP port (default 5081 Dataverse, 5082 Finance)"),
        host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
        db: Path | None = typer.Option(None, "--db", help="SQLite file (default: in memory)"),
        faults: str | None = typer.Option(None, "--faults", help="fault spec, e.g. 'latency:0.2=50;error5xx:0.05'"),
        token: str = typer.Option("dev-token", "--token", help="bearer token clients must send ('' = no auth)"),
        flows_every: float | None = typer.Option(
            None, "--flows-every", min=0.1, metavar="SECONDS",
            help="Finance only: run the business flows (postings, approvals) every SECONDS"),
    ) -> None:
        """Serve a Dataverse Web API or Finance OData emulator on loopback.

        Example: dualsync emulator finance --port 5082 --db fo.sqlite --flows-every 30
        """
        if flows_every is not None and service is not Service.finance:
            typer.echo("error: --flows-every applies to the finance emulator only", err=True)
            raise typer.Exit(2)
        module = importlib.import_module(f"sandbox.{service.value}")
        options = {"flows_every": flows_every} if flows_every is not None else {}
        try:
            app = module.create_app(db=db, faults=faults, token=token or None, **options)
        except ValueError as exc:  # a bad --faults spec names the bad rule
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        port = port or DEFAULT_PORTS[service.value]
        auth = "bearer token required" if token else "no auth"
        flows = f", flows every {flows_every:g} s" if flows_every is not None else ""
        typer.echo(f"{service.value} emulator at http://{host}:{port}{SERVICE_ROOTS[service.value]} ({auth}{flows}); "
                   "Ctrl-C to stop")
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
                    timeout_keep_alive=30, h11_max_incomplete_event_size=32 * 1024 * 1024)
