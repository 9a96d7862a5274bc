"""Business events: after each committed create/update/delete the emulator sends a business-event
JSON to every registered endpoint, like Finance's HTTPS endpoint or a Service Bus endpoint.

BusinessEventId per entity and operation: ``<data entity without 'Entity'><Created|Updated|Deleted>BusinessEvent``,
e.g. ``ProjCDSProjectCreatedBusinessEvent``, ``CustCustomerV3UpdatedBusinessEvent``,
``ProjExpenseExportDeletedBusinessEvent``. Category: the entity's ``event_category`` in schema.yaml.

Payload: the common business-event fields (apis.md §9) plus ``EntityName`` (data entity),
``EntitySetName``, ``Operation`` (Create/Update/Delete) and the record's key fields at top level
(``dataAreaId`` included for company-specific entities). ``BusinessEventLegalEntity`` is the record's
company upper-cased (the default company for shared entities).

Delivery is asynchronous, after the response: per endpoint, in order, retried ``retry_count`` times
``retry_wait`` seconds apart (Finance defaults: 3 and 1000 ms), then counted as failed. An endpoint is
either an HTTPS-style URL (POST of the JSON) or a Python callable ``publish(body, properties)`` with
properties ``BusinessEventId``, ``BusinessEventCategory``, ``LegalEntity``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.finance.schema import COMPANY_FIELD
from sandbox.finance.service import Change

Publish = Callable[[bytes, dict[str, str]], Any]
INITIATING_USER = "{00000000-0000-0000-0000-0000000000A1}"


@dataclass
class Endpoint:
    id: str
    url: str | None = None
    publish: Publish | None = None
    legal_entities: frozenset[str] | None = None  # upper-case ids; None = all
    business_event_ids: frozenset[str] | None = None
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] | None = field(default=None, repr=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def wants(self, event_id: str, legal_entity: str) -> bool:
        return ((self.legal_entities is None or legal_entity in self.legal_entities)
                and (self.business_event_ids is None or event_id in self.business_event_ids))

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "callable": self.publish is not None,
                "legal_entities": sorted(self.legal_entities) if self.legal_entities else None,
                "business_event_ids": sorted(self.business_event_ids) if self.business_event_ids else None}


def build_event(change: Change, default_company: str, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    ent = change.entity
    now = now or datetime.now(UTC)
    event_id = ent.business_event_id(change.operation)
    company = str(change.keys.get(COMPANY_FIELD) or default_company).upper()
    subject = f"{ent.entity_set}(" + ",".join(f"{k}='{v}'" for k, v in change.keys.items()) + ")"
    body: dict[str, Any] = {
        "BusinessEventId": event_id,
        "BusinessEventLegalEntity": company,
        "ContextRecordSubject": subject,
        "ControlNumber": change.control_number,
        "EventId": str(uuid.uuid4()).upper(),
        "EventTime": f"/Date({int(now.timestamp() * 1000)})/",
        "EventTimeIso8601": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
        "InitiatingUserAADObjectId": INITIATING_USER,
        "MajorVersion": 0,
        "MinorVersion": 0,
        "ParentContextRecordSubjects": [],
        "EntityName": ent.aot_name,
        "EntitySetName": ent.entity_set,
        "Operation": change.operation,
    }
    for k, v in change.keys.items():
        body[k] = v
    props = {"BusinessEventId": event_id, "BusinessEventCategory": ent.event_category, "LegalEntity": company}
    return json.dumps(body).encode(), props


class BusinessEvents:
    def __init__(self, default_company: str, retry_count: int = 3, retry_wait: float = 1.0,
                 timeout: float = 10.0, workers: int = 8) -> None:
        self.default_company = default_company
        # Finance's batch dispatch sends several events at once, in no promised order
        self.workers = workers
        self.retry_count, self.retry_wait, self.timeout = retry_count, retry_wait, timeout
        self.endpoints: dict[str, Endpoint] = {}
        self.counters: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._pending = 0
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None

    def register(self, url: str | None = None, publish: Publish | None = None,
                 legal_entities: Iterable[str] | None = None,
                 business_event_ids: Iterable[str] | None = None) -> str:
        if (url is None) == (publish is None):
            raise ValueError("give exactly one of url or publish")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("url must be http(s)")
        eid = f"endpoint-{next(self._ids)}"
        self.endpoints[eid] = Endpoint(
            eid, url, publish,
            frozenset(x.upper() for x in legal_entities) if legal_entities else None,
            frozenset(business_event_ids) if business_event_ids else None)
        return eid

    def unregister(self, endpoint_id: str) -> bool:
        ep = self.endpoints.pop(endpoint_id, None)
        if ep is None:
            return False
        if ep.loop is None or ep.loop.is_closed():
            return True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is ep.loop:
            self._drop(ep)
        else:  # called from another thread: stop the workers on their own loop
            ep.loop.call_soon_threadsafe(self._drop, ep)
        return True

    def _drop(self, ep: Endpoint) -> None:
        """On the server loop: stop the endpoint's workers; its queued events are dropped, not left pending."""
        for task in ep.tasks:
            task.cancel()
        if ep.queue is not None:
            with self._lock:
                self._pending -= ep.queue.qsize()
            ep.queue = None

    def clear(self) -> None:
        for eid in list(self.endpoints):
            self.unregister(eid)
        self.counters.clear()

    @property
    def pending(self) -> int:
        return self._pending

    def emit(self, changes: list[Change]) -> None:
        """Queue events for the committed ``changes`` (call on the server's event loop)."""
        if not changes or not self.endpoints:
            return
        for change in changes:
            body, props = build_event(change, self.default_company)
            self.counters["emitted"] += 1
            for ep in list(self.endpoints.values()):
                if not ep.wants(props["BusinessEventId"], props["LegalEntity"]):
                    continue
                if ep.queue is None:
                    ep.queue = asyncio.Queue()
                    ep.loop = asyncio.get_running_loop()
                    ep.tasks = [ep.loop.create_task(self._worker(ep, ep.queue)) for _ in range(self.workers)]
                with self._lock:
                    self._pending += 1
                ep.queue.put_nowait((body, props))

    async def _worker(self, ep: Endpoint, queue: asyncio.Queue[tuple[bytes, dict[str, str]]]) -> None:
        while True:
            body, props = await queue.get()
            try:
                for attempt in range(self.retry_count + 1):
                    if await self._send(ep, body, props):
                        self.counters["delivered"] += 1
                        break
                    self.counters["attempts_failed"] += 1
                    if attempt < self.retry_count:
                        await asyncio.sleep(self.retry_wait)
                else:
                    self.counters["failed"] += 1
            finally:
                with self._lock:
                    self._pending -= 1

    async def _send(self, ep: Endpoint, body: bytes, props: dict[str, str]) -> bool:
        try:
            if ep.publish is not None:
                result = ep.publish(body, dict(props))
                if asyncio.iscoroutine(result):
                    await result
                return True
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self.timeout)
            assert ep.url is not None
            r = await self._client.post(ep.url, content=body, headers={"Content-Type": "application/json"})
            return 200 <= r.status_code < 300
        except Exception:  # a failing endpoint is counted and retried, never allowed to stop the worker
            return False
