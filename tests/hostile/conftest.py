"""The real function app hosted by the dev host over loopback, for hostile and auth requests.

One host per module: settings point at the session's emulators, the broker and the state store sit in
a tmp folder, and a shared webhook secret is configured. Every function that is not HTTP-triggered is
switched off (``AzureWebJobs.<name>.Disabled``), so nothing consumes the change topic: what the
webhooks publish stays there and :meth:`LiveApp.published` counts it exactly. The topic has an audit
subscription without a filter and without duplicate detection, so each published notification is
one row.

Log records of every logger, at DEBUG, are kept in :attr:`LiveApp.records` for the whole module, so a
test can assert that no exception reached the host's log and that no secret reached any log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.transport.local import LocalBroker

AUDIT_SUBSCRIPTION = "hostile-audit"
MAX_BODY_BYTES = 64 * 1024  # small, so "just over the limit" is cheap to send


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class LiveApp:
    handle: Any  # sandbox.host.HostHandle
    broker_path: Path
    secret: str
    static_token: str
    topic: str
    log: _Keep
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.handle.url, timeout=30)

    @property
    def function_key(self) -> str:
        return str(self.handle.function_key)

    @property
    def master_key(self) -> str:
        return str(self.handle.master_key)

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.log.records

    def published(self) -> int:
        """Notifications on the change topic so far (nothing consumes them)."""
        with sqlite3.connect(f"file:{self.broker_path}?mode=ro", uri=True) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
        return int(count)

    def bodies(self) -> list[bytes]:
        with sqlite3.connect(f"file:{self.broker_path}?mode=ro", uri=True) as conn:
            return [bytes(b) for (b,) in conn.execute("SELECT body FROM messages ORDER BY seq")]

    def post(self, route: str, body: Any, headers: dict[str, str] | None = None, *,
             key: str | None = "function", secret: bool = True) -> httpx.Response:
        """POST to ``/api/<route>`` with the function key (or ``key``) and the shared secret."""
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("x-functions-key", self.function_key if key == "function" else key)
        if secret:
            sent.setdefault("x-dualsync-key", self.secret)
        return self.client.post(f"/api/{route}", content=body, headers=sent)

    def secrets(self) -> list[str]:
        return [self.function_key, self.master_key, self.secret, self.static_token]

    def exceptions_logged(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info or r.levelno >= logging.ERROR]


def _http_only_settings(app: Any) -> dict[str, str]:
    """App settings for the host: the app's own defaults, every non-HTTP function switched off."""
    from sandbox.host.appsettings import AppSettings, dualsync_setting_defaults
    from sandbox.host.discovery import Kind, discover

    fallbacks = dualsync_setting_defaults()
    inventory = discover(app, AppSettings(fallbacks=fallbacks))
    for fn in inventory.functions:
        if fn.kind is not Kind.HTTP:
            fallbacks[f"AzureWebJobs.{fn.name}.Disabled"] = "true"
    return fallbacks


async def _make_topic(path: Path, topic: str) -> None:
    broker = LocalBroker(path)
    await broker.open()
    try:
        await broker.create_topic(topic, duplicate_detection_window=False)
        await broker.create_subscription(topic, AUDIT_SUBSCRIPTION)
    finally:
        await broker.close()


@pytest.fixture(scope="module")
def live_app(emulators: Any, app_functions: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    # app_functions first: it indexes the app (get_functions() may run once per app).
    from sandbox.host import AppSettings, start_in_thread
    from shared.process import forget_built_services
    from shared.runtime import get_runtime

    work = tmp_path_factory.mktemp("hostile")
    broker_path = work / "broker.sqlite"
    dv, fo = emulators
    secret = secrets.token_urlsafe(24)
    # No function these suites call reaches the emulators (consumers are off), so the static token is
    # a random one rather than the emulators' one-letter token: a leak check can then find it.
    token = secrets.token_urlsafe(24)
    env = {
        "DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url,
        "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": token,
        "DUALSYNC_TRANSPORT": "local", "DUALSYNC_BROKER_PATH": str(broker_path),
        "DUALSYNC_STATE_BACKEND": "sqlite", "DUALSYNC_STATE_SQLITE_PATH": str(work / "state.sqlite"),
        "DUALSYNC_WEBHOOK_SECRET": secret, "DUALSYNC_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    keep = _Keep()
    root = logging.getLogger()
    old_level = root.level
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        # Process-wide objects built from the previous settings (or on another event loop).
        forget_built_services()
        import function_app

        topic = get_runtime().settings.change_topic
        asyncio.run(_make_topic(broker_path, topic))
        root.addHandler(keep)
        root.setLevel(logging.DEBUG)
        handle = start_in_thread(function_app.app, keys_path=work / "keys.json", broker_path=broker_path,
                                 timers=False, app_settings=AppSettings(fallbacks=_http_only_settings(function_app.app)),
                                 stop_grace=1.0)
        app = LiveApp(handle, broker_path, secret, token, topic, keep)
        try:
            yield app
        finally:
            app.client.close()
            handle.stop()
            root.removeHandler(keep)
            root.setLevel(old_level)
    forget_built_services()
