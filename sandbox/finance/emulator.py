"""The in-process control object of the Finance emulator (``app.state.emulator``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sandbox.faults import FaultCounters, FaultPlan, Throttle
from sandbox.finance.errors import FinanceError
from sandbox.finance.events import BusinessEvents, Publish
from sandbox.finance.flows import FinanceFlows, FlowAwareService
from sandbox.finance.schema import (
    COMPANY_FIELD,
    BodyValueError,
    Entity,
    Schema,
    load_schema,
    parse_body_value,
)
from sandbox.finance.service import Change, ServiceOptions
from sandbox.finance.store import DuplicateKey, Store


class UnknownEntitySet(KeyError):
    pass


class FinanceEmulator:
    def __init__(
        self,
        *,
        db: str | Path | None = None,
        faults: str | None = None,
        token: str | None = "dev-token",
        default_company: str = "usmf",
        page_size: int = 10_000,
        seed: int = 0,
        write_error_status: int = 400,
        event_retry_count: int = 3,
        event_retry_wait: float = 1.0,
        schema: Schema | None = None,
        flows_every: float | None = None,
    ) -> None:
        self.schema = schema or load_schema()
        self.token = token
        self.seed = seed
        self.store = Store(self.schema, db)
        self.options = ServiceOptions(default_company.lower(), page_size, write_error_status)
        self.service = FlowAwareService(self.schema, self.store, self.options)
        self.flows = FinanceFlows(self.schema, self.store)
        self.flows_every = flows_every
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's loop, set by the app
        self._schedule: asyncio.Task[None] | None = None
        self.events = BusinessEvents(self.options.default_company, event_retry_count, event_retry_wait)
        self.counters = FaultCounters()
        self.plan: FaultPlan | None = FaultPlan.parse(faults, seed) if faults else None
        self.throttle: Throttle | None = None

    # --- data -----------------------------------------------------------------------------------

    def entity(self, entity_set: str) -> Entity:
        ent = self.schema.entity(entity_set)
        if ent is None:
            raise UnknownEntitySet(entity_set)
        return ent

    def reset(self) -> None:
        """Empty every entity, forget faults, throttle, endpoints and stats."""
        self.store.clear()
        self.plan = None
        self.throttle = None
        self.events.clear()
        self.counters.reset()

    def _coerce(self, ent: Entity, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            f = ent.fields.get(name)
            if f is None:
                raise ValueError(f"{ent.entity_set}: unknown field {name!r}")
            try:
                out[name] = parse_body_value(self.schema, f, value) if not f.system else value
            except BodyValueError as exc:
                raise ValueError(f"{ent.entity_set}.{name}: {exc}") from None
        if ent.company and not out.get(COMPANY_FIELD):
            out[COMPANY_FIELD] = self.options.default_company
        for k in ent.key:
            if out.get(k) in (None, ""):
                raise ValueError(f"{ent.entity_set}: key field {k!r} is missing in {row!r}")
        return out

    def load_rows(self, entity_set: str, rows: Iterable[dict[str, Any]], *, validate: bool = False) -> int:
        """Bulk insert without HTTP or business events, in one transaction. Keys are enforced (a
        duplicate raises ``ValueError`` and nothing is loaded); ``validate`` also checks mandatory fields
        and relations, row by row (slower)."""
        ent = self.entity(entity_set)

        def coerced() -> Iterator[dict[str, Any]]:
            for row in rows:
                r = self._coerce(ent, row)
                if validate:
                    self.service.validate_row(ent, r)
                yield r

        try:
            with self.store.transaction():
                return self.store.insert_many(ent, coerced())
        except DuplicateKey as exc:
            raise ValueError(f"{entity_set}: duplicate key ({exc})") from None
        except FinanceError as exc:
            raise ValueError(f"{entity_set}: {exc.message}") from None

    def count(self, entity_set: str) -> int:
        return self.store.count(self.entity(entity_set))

    def rows(self, entity_set: str) -> Iterator[dict[str, Any]]:
        for row in self.store.iterate(self.entity(entity_set)):
            row.pop("_rv", None)
            yield row

    # --- faults, throttle -----------------------------------------------------------------------

    def set_faults(self, spec: str | None, seed: int | None = None) -> None:
        """Replace the fault plan (``None``/empty = no faults); raises ``ValueError`` for a bad spec."""
        plan = FaultPlan.parse(spec, self.seed if seed is None else seed)
        self.plan = plan if plan else None

    def set_throttle(self, requests_per_window: int | None, window_seconds: float = 300.0,
                     concurrent: int | None = None) -> None:
        if requests_per_window is None and concurrent is None:
            self.throttle = None
        else:
            self.throttle = Throttle(requests_per_window, window_seconds, concurrent)

    # --- business events ------------------------------------------------------------------------

    def register_endpoint(self, url: str | None = None, publish: Publish | None = None, *,
                          legal_entities: Iterable[str] | None = None,
                          business_event_ids: Iterable[str] | None = None) -> str:
        return self.events.register(url, publish, legal_entities, business_event_ids)

    def unregister_endpoint(self, endpoint_id: str) -> bool:
        return self.events.unregister(endpoint_id)

    def endpoints(self) -> list[dict[str, Any]]:
        return [ep.describe() for ep in self.events.endpoints.values()]

    def wait_for_events(self, timeout: float = 10.0) -> bool:
        """Block (from another thread) until every queued event is delivered or given up."""
        deadline = time.monotonic() + timeout
        while self.events.pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # --- business flows (flows.py) ---------------------------------------------------------------

    def run_flow(self, name: str = "all") -> list[dict[str, object]]:
        """Run a flow now (from any thread) and emit the business events of what it changed."""
        reports = self.flows.run(name)
        self._emit([c for r in reports for c in r.changes])
        return [r.describe() for r in reports]

    def _emit(self, changes: list[Change]) -> None:
        if not changes:
            return
        try:
            asyncio.get_running_loop()
            self.events.emit(changes)
        except RuntimeError:  # another thread: hand the events to the server's loop
            if self.loop is not None and self.loop.is_running():
                self.loop.call_soon_threadsafe(self.events.emit, changes)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the app on its first request: events go through this loop; the schedule starts."""
        if self.loop is loop:
            return
        self.loop = loop
        if self.flows_every and self._schedule is None:
            self._schedule = loop.create_task(self._run_on_schedule(self.flows_every))

    async def _run_on_schedule(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self.run_flow("all")
            except Exception:  # a broken flow run must not stop the schedule
                continue

    # --- stats ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        snap = self.counters.snapshot()
        snap["events"] = dict(self.events.counters)
        snap["events"]["pending"] = self.events.pending
        snap["faults_spec"] = self.plan.spec if self.plan else None
        snap["throttle"] = self.throttle.describe() if self.throttle else None
        return snap
