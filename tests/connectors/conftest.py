"""Emulators over real HTTP on loopback, one per module, emptied before each test."""

from __future__ import annotations

import logging

import pytest

from shared.connectors.auth import StaticToken
from shared.connectors.http import registry
from shared.settings import load_settings

TOKEN = "t"


@pytest.fixture(scope="module")
def finance_server():
    from sandbox import finance

    srv = finance.start(port=0, token=TOKEN)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dataverse_server():
    from sandbox import dataverse

    srv = dataverse.start(port=0, token=TOKEN)
    yield srv
    srv.stop()


def settings_for(dataverse_url: str = "http://127.0.0.1:1", finance_url: str = "http://127.0.0.1:1", **kw):
    values = {"auth_mode": "static_token", "static_token": TOKEN, "retry_budget_seconds": 10.0,
              "max_concurrency": 8, "batch_size": 50, **kw}
    return load_settings(dataverse_url=dataverse_url, finance_url=finance_url, **values)


@pytest.fixture
async def pooled_clients():
    """Close this test's pooled clients (they belong to the test's event loop)."""
    yield registry
    await registry.aclose()


@pytest.fixture
def connector_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


__all__ = ["TOKEN", "StaticToken", "settings_for"]


class RequestLog:
    """ASGI wrapper recording when each request arrived and what it was answered (real HTTP)."""

    def __init__(self, app):
        self.app = app
        self.entries: list[tuple[float, float, int, float | None]] = []  # arrived, answered, status, retry-after
        self.state = app.state

    async def __call__(self, scope, receive, send):
        import time

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()

        async def recording_send(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                ra = headers.get(b"retry-after")
                self.entries.append((arrived, time.monotonic(), message["status"], float(ra) if ra else None))
            await send(message)

        await self.app(scope, receive, recording_send)

    def sent_during_cooldown(self, margin: float = 0.05) -> list[tuple[float, int]]:
        """Requests that arrived while an earlier 429's Retry-After was still running."""
        bad = []
        for _, answered, status, retry_after in self.entries:
            if status != 429 or not retry_after:
                continue
            for arrived, _, s, _ in self.entries:
                if answered + margin < arrived < answered + retry_after - margin:
                    bad.append((arrived - answered, s))
        return bad


@pytest.fixture
def recorded():
    """Start an emulator app behind a :class:`RequestLog` on a free port; stopped at teardown."""
    from sandbox.httpserver import serve_in_thread

    servers = []

    def start(app):
        log = RequestLog(app)
        srv = serve_in_thread(log)
        servers.append(srv)
        return srv, log

    yield start
    for srv in servers:
        srv.stop()
