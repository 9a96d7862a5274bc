"""Dataverse Web API emulator (``/api/data/v9.2/``) over real HTTP, backed by SQLite.

    from sandbox import dataverse
    server = dataverse.start(port=0)            # RunningServer: .url, .stop(), .app.state.emulator
    emu = server.app.state.emulator             # DataverseEmulator: load_rows, count, rows, reset,
                                                # set_faults, set_throttle, register_webhook,
                                                # register_service_bus, unregister, stats, expire_delta_tokens

Behaviour and its sources: ``service.py`` (CRUD, upsert, keys, queries, paging, change tracking),
``batch.py`` ($batch), ``notify.py`` (webhooks / Service Bus notifications), ``errors.py`` (error
codes and texts), ``schema.yaml`` (tables). Admin API under ``/_emulator/`` (same bearer token):
GET/PUT faults, PUT throttle, POST reset, GET stats, POST expire-delta-tokens,
POST/GET webhooks, DELETE webhooks/<id>.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.dataverse.app import DataverseEmulator, create_app
from sandbox.httpserver import RunningServer, serve_in_thread


def start(*, port: int = 0, db: str | Path | None = None, faults: str | None = None,
          token: str | None = "dev-token", **options: Any) -> RunningServer:
    """Start the emulator on loopback in a background thread; ``.url`` is the root (no service path)."""
    return serve_in_thread(create_app(db=db, faults=faults, token=token, **options), port=port)


__all__ = ["DataverseEmulator", "create_app", "start"]
