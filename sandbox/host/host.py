"""The dev host: runs a ``func.FunctionApp`` locally, as Core Tools would, on the embedded broker.

HTTP triggers on loopback (Starlette + uvicorn), Service Bus triggers from the broker file the app
publishes to, timers on their schedules. Everything runs on one event loop, the app's async code
included (its clients are bound to the loop that first used them), as in the Python worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import uvicorn

from shared.transport.local import LocalBroker

from .appsettings import AppSettings, dualsync_setting_defaults
from .discovery import Inventory, Kind, discover
from .hostconfig import HostConfig
from .http import HttpFront
from .keys import DEFAULT_KEYS_PATH, HostKeys
from .servicebus import ServiceBusRunner, SubscriptionFilter, map_filter
from .stats import HostStats
from .timers import TimerRunner
from .waker import BrokerWaker

log = logging.getLogger("dualsync.host")
DEFAULT_BROKER_PATH = Path(".dualsync/broker.sqlite")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the host decides what a signal means (a clean stop of triggers first), not uvicorn
        yield


def _default_settings() -> AppSettings:
    try:
        return AppSettings(fallbacks=dualsync_setting_defaults())
    except Exception as exc:  # an app that is not dualsync, or settings that do not load
        log.debug("no dualsync settings for fallbacks: %s", exc)
        return AppSettings()


def _default_broker_path(settings: AppSettings) -> Path:
    value = settings.get("DUALSYNC_BROKER_PATH")
    return Path(value) if value else DEFAULT_BROKER_PATH


class DevHost:
    """Host ``app``'s functions. ``await start()``, then ``url``, keys, ``wait_idle``, ``stats``, ``stop``."""

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        port: int = 0,
        keys_path: Path = DEFAULT_KEYS_PATH,
        broker_path: Path | None = None,
        timers: bool = True,
        sessions: int = 8,
        host: str = "127.0.0.1",
        host_json: Path | None = Path("host.json"),
        app_settings: AppSettings | None = None,
        subscription_filter: SubscriptionFilter = map_filter,
        stop_grace: float = 10.0,
    ):
        self.app = app
        self.host = host
        self.port = port
        self.keys_path = Path(keys_path)
        self.settings = app_settings or _default_settings()
        self.broker_path = Path(broker_path) if broker_path else _default_broker_path(self.settings)
        self.timers_enabled = timers
        self.sessions = sessions
        self.config = HostConfig.load(host_json)
        self.subscription_filter = subscription_filter
        self.stop_grace = stop_grace
        self.inventory = Inventory()
        self.counters = HostStats()
        self._keys: HostKeys | None = None
        self._broker: LocalBroker | None = None
        self._waker: BrokerWaker | None = None
        self._bus: ServiceBusRunner | None = None
        self._timers: TimerRunner | None = None
        self._http: HttpFront | None = None
        self._server: _Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._started = False

    # --- life cycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the dev host is already started")
        self.inventory = discover(self.app, self.settings)
        for skipped in self.inventory.skipped:
            log.warning("not hosting %s: %s", skipped.name, skipped.reason)
        published_to = self.settings.get("DUALSYNC_BROKER_PATH")
        if published_to and Path(published_to).resolve() != self.broker_path.resolve():
            log.warning("the app publishes to %s but the host consumes %s", published_to, self.broker_path)
        self._keys = HostKeys.load_or_create(self.keys_path)
        self._broker = LocalBroker(self.broker_path)
        await self._broker.open()
        try:
            await self._start_parts()
        except BaseException:
            await self._teardown()
            raise
        self._started = True

    async def _start_parts(self) -> None:
        assert self._broker is not None and self._keys is not None
        self._waker = BrokerWaker(self.broker_path)
        self._bus = ServiceBusRunner(self._broker, self.inventory.of_kind(Kind.SERVICE_BUS), self.config,
                                     self.counters, self._waker, sessions=self.sessions,
                                     subscription_filter=self.subscription_filter)
        await self._bus.ensure_entities(with_outputs=self.inventory.functions)
        timer_functions = self.inventory.of_kind(Kind.TIMER) if self.timers_enabled else []
        self._timers = TimerRunner(timer_functions, self.counters)
        self._http = HttpFront(self.inventory.of_kind(Kind.HTTP), self._keys, self.counters, self._broker,
                               route_prefix=self.config.route_prefix, on_output=self._waker.poke)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))  # bound here: port 0 gets a free port without a race
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._http.app, log_level="warning", lifespan="off", access_log=False,
                                timeout_keep_alive=30, h11_max_incomplete_event_size=32 * 1024 * 1024)
        self._server = _Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]), name="devhost-http")
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise RuntimeError(f"HTTP server on {self.host}:{self.port} did not start")
            await asyncio.sleep(0.01)
        self._waker.start()
        self._bus.start()
        self._timers.start()
        log.info("dev host at %s: %d functions", self.url, len(self.inventory.functions))

    async def stop(self) -> None:
        """Stop triggers (running functions get ``stop_grace`` seconds), then the HTTP server."""
        await self._teardown()
        self._started = False

    async def _teardown(self) -> None:
        if self._timers is not None:
            await self._timers.stop(self.stop_grace)
        if self._bus is not None:
            await self._bus.stop(self.stop_grace)
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serve_task, self.stop_grace)
        if self._waker is not None:
            await self._waker.stop()
        if self._broker is not None:
            await self._broker.close()
        self._timers = self._bus = self._server = self._serve_task = self._waker = None
        self._broker = None

    async def __aenter__(self) -> DevHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- what callers read --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def function_key(self) -> str:
        if self._keys is None:
            raise RuntimeError("start the host first")
        return self._keys.function_key

    @property
    def master_key(self) -> str:
        if self._keys is None:
            raise RuntimeError("start the host first")
        return self._keys.master_key

    def stats(self) -> dict[str, Any]:
        snapshot = self.counters.snapshot()
        snapshot["functions_hosted"] = len(self.inventory.functions)
        snapshot["functions_skipped"] = {s.name: s.reason for s in self.inventory.skipped}
        snapshot["in_flight"] = self._in_flight()
        if self._timers is not None:
            snapshot["timers_next_run"] = {k: v.isoformat() for k, v in sorted(self._timers.next_run.items())}
        return snapshot

    def running_tasks(self, limit: int = 40) -> list[str]:
        """The host loop's tasks other than its own receive loops, each with where it is awaiting: what
        a caller prints when the host does not go idle (call it on the host's loop)."""
        lines: list[str] = []
        for task in asyncio.all_tasks():
            if task.get_name().startswith("sb-") or task is asyncio.current_task():
                continue
            frames = task.get_stack(limit=8)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames)) or "?"
            lines.append(f"{task.get_name()}: {where}")
        return sorted(lines)[:limit]

    # --- idle ---------------------------------------------------------------------------------------
    def _in_flight(self) -> int:
        return ((self._bus.in_flight if self._bus else 0) + (self._http.in_flight if self._http else 0)
                + (self._timers.running if self._timers else 0))

    async def idle_report(self, horizon: float = 1.0) -> dict[str, Any]:
        """Where work is: per consumed entity, messages ready or locked, dead letters a trigger consumes,
        and scheduled messages; those due after ``horizon`` seconds are listed apart (``scheduled_later``),
        since they do not keep the host busy."""
        assert self._broker is not None and self._bus is not None
        now = datetime.now(UTC)
        busy: dict[str, dict[str, Any]] = {}
        later: dict[str, dict[str, Any]] = {}
        consumed: dict[str, bool] = {}  # entity -> whether its dead-letter queue has a trigger
        for fn in self._bus.functions:
            consumed[fn.entity] = consumed.get(fn.entity, False) or fn.dead_letter
        for entity, dead_letters_consumed in sorted(consumed.items()):
            counts = await self._broker.counts(entity)
            entry: dict[str, Any] = {}
            if counts.active:
                entry["active"] = counts.active
            if dead_letters_consumed and counts.dead_letter:
                entry["dead_letter"] = counts.dead_letter
            if counts.scheduled:
                due = await self._scheduled_times(entity, now)
                soon = [t for t in due if (t - now).total_seconds() <= horizon]
                if soon:
                    entry["scheduled_soon"] = len(soon)
                if len(due) > len(soon):
                    later[entity] = {"count": len(due) - len(soon), "next_at": min(set(due) - set(soon)).isoformat()}
            if entry:
                busy[entity] = entry
        in_flight = self._in_flight()
        return {"idle": not busy and in_flight == 0, "in_flight": in_flight, "busy": busy,
                "scheduled_later": later}

    async def _scheduled_times(self, entity: str, now: datetime) -> list[datetime]:
        assert self._broker is not None
        times: list[datetime] = []
        start = 0
        while True:
            page = await self._broker.peek(entity, 250, from_sequence=start)
            times += [m.scheduled_enqueue_time_utc for m in page
                      if m.scheduled_enqueue_time_utc is not None and m.scheduled_enqueue_time_utc > now]
            if len(page) < 250:
                return times
            start = page[-1].sequence_number + 1

    async def wait_idle(self, timeout: float, horizon: float = 1.0) -> bool:
        """True once nothing is in flight and no consumed entity holds a message ready, locked or due
        within ``horizon`` seconds; False if that does not happen within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._bus is not None and self._in_flight() == 0:
                before = self._bus.activity
                report = await self.idle_report(horizon)
                if report["idle"] and self._in_flight() == 0 and self._bus.activity == before:
                    return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
