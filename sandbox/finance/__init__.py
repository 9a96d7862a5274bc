"""Emulator of Dynamics 365 Finance OData data entities (``/data/``), for tests and the sandbox.

``create_app()`` builds the Starlette app (``app.state.emulator`` is the control object);
``start()`` serves it on loopback. See README.md in this folder for behaviour and deviations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from sandbox.finance.app import build_app
from sandbox.finance.emulator import FinanceEmulator
from sandbox.httpserver import RunningServer, serve_in_thread

__all__ = ["FinanceEmulator", "create_app", "start"]


def create_app(*, db: str | Path | None = None, faults: str | None = None, token: str | None = "dev-token",
               **options: Any) -> Starlette:
    """Options: ``default_company`` ('usmf'), ``page_size`` (10,000), ``seed`` (0),
    ``write_error_status`` (400), ``event_retry_count`` (3), ``event_retry_wait`` (1.0 s)."""
    return build_app(FinanceEmulator(db=db, faults=faults, token=token, **options))


def start(*, port: int = 0, db: str | Path | None = None, faults: str | None = None,
          token: str | None = "dev-token", **options: Any) -> RunningServer:
    return serve_in_thread(create_app(db=db, faults=faults, token=token, **options), port=port)
