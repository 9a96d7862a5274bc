"""The sandbox's moving parts on loopback: both emulators with demo data, the app's settings, the dev host.

Everything lives in one work folder (SQLite files of the emulators, the state store and the broker, the
host's keys), wiped at the start of each run so a run never sees the last one's data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import dataverse, finance
from sandbox.demo.load import load
from sandbox.httpserver import RunningServer

DEFAULT_WORKDIR = Path(".dualsync/sandbox")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def app_settings(workdir: Path, dataverse_url: str, finance_url: str, token: str) -> dict[str, str]:
    """The app settings of a sandbox run: emulators, embedded state store and broker in ``workdir``."""
    return {
        "DUALSYNC_DATAVERSE_URL": dataverse_url,
        "DUALSYNC_FINANCE_URL": finance_url,
        "DUALSYNC_AUTH_MODE": "static_token",
        "DUALSYNC_STATIC_TOKEN": token,
        "DUALSYNC_STATE_BACKEND": "sqlite",
        "DUALSYNC_STATE_SQLITE_PATH": str(workdir / "state.sqlite"),
        "DUALSYNC_TRANSPORT": "local",
        "DUALSYNC_BROKER_PATH": str(workdir / "broker.sqlite"),
        # Polling every 2 minutes: a long run still catches a missed webhook, a short one is not kept busy.
        "DUALSYNC_PULL_SCHEDULE": "0 */2 * * * *",
    }


@dataclass
class Environment:
    workdir: Path
    token: str
    dataverse: RunningServer
    finance: RunningServer
    demo_rows: dict[str, int]
    host: Any = None
    _endpoints: dict[str, str] = field(default_factory=dict)
    _dataverse_tables: list[str] | None = None
    _finance_events: list[str] | None = None
    _saved_environ: dict[str, str | None] = field(default_factory=dict)

    @property
    def dv(self) -> Any:
        """The Dataverse emulator's control object."""
        return self.dataverse.app.state.emulator

    @property
    def fo(self) -> Any:
        return self.finance.app.state.emulator

    def start_host(self, *, sessions: int = 8) -> Any:
        """Import the function app with this run's settings and host it (HTTP, broker, timers)."""
        from shared.process import forget_built_services

        settings = app_settings(self.workdir, self.dataverse.url, self.finance.url, self.token)
        self._saved_environ = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        forget_built_services()
        if str(PROJECT_ROOT) not in sys.path:  # the worker imports function_app.py from the script root
            sys.path.insert(0, str(PROJECT_ROOT))
        import function_app
        from sandbox.host import start_in_thread

        self.host = start_in_thread(function_app.app, keys_path=self.workdir / "host-keys.json",
                                    broker_path=self.workdir / "broker.sqlite", timers=True, sessions=sessions)
        return self.host

    def connect_notifications(self) -> None:
        """Point Dataverse's webhook and Finance's business events at the host, with the function key,
        for the tables and entities the catalog maps (as an administrator registers the steps and
        activates the business events): unmapped ones would only be refused and retried."""
        assert self.host is not None, "start the host first"
        from shared.runtime import get_runtime

        catalog = get_runtime().catalog
        self._dataverse_tables = sorted({m.dataverse.table for m in catalog})
        self._finance_events = sorted({self.fo.entity(m.finance.entity_set).business_event_id(op)
                                       for m in catalog for op in ("Create", "Update", "Delete")})
        self.release_dataverse()
        self._endpoints["finance"] = self.fo.register_endpoint(
            url=f"{self.host.url}/api/finance/events?code={self.host.function_key}",
            business_event_ids=self._finance_events)

    @property
    def notified_tables(self) -> list[str] | None:
        """The Dataverse tables whose changes are sent (set by ``connect_notifications``)."""
        return self._dataverse_tables

    @property
    def notified_business_events(self) -> list[str] | None:
        """The Finance business events sent (set by ``connect_notifications``)."""
        return self._finance_events

    def hold_dataverse(self) -> None:
        """Stop Dataverse notifications (what an unregistered step does); changes meanwhile are not sent."""
        endpoint = self._endpoints.pop("dataverse", None)
        if endpoint:
            self.dv.unregister(endpoint)

    def release_dataverse(self) -> None:
        assert self.host is not None
        self._endpoints["dataverse"] = self.dv.register_webhook(
            f"{self.host.url}/api/dataverse/webhook", tables=self._dataverse_tables, auth="webhookkey",
            auth_values={"code": self.host.function_key})

    def stop(self) -> None:
        from shared.process import forget_built_services

        if self.host is not None:
            self.host.stop()
        self.dataverse.stop()
        self.finance.stop()
        # this run's settings and services must not outlive it in the process (tests run several)
        for k, v in self._saved_environ.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_environ = {}
        forget_built_services()


def start_environment(rows: int, seed: int, workdir: Path = DEFAULT_WORKDIR) -> Environment:
    """Fresh work folder, both emulators with ``rows`` demo rows (each on its system of record)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    dv = dataverse.start(db=workdir / "dataverse.sqlite", token=token)
    try:
        fo = finance.start(db=workdir / "finance.sqlite", token=token)
    except Exception:
        dv.stop()
        raise
    env = Environment(workdir, token, dv, fo, {})
    try:
        env.demo_rows = load(env.dv, env.fo, rows, seed)
    except Exception:
        env.stop()
        raise
    return env
