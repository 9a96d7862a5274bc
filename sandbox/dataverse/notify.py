"""Change notifications: the ``RemoteExecutionContext`` JSON (apis.md §1.3) sent to webhooks and to
"Service Bus service endpoints" (Python callables) after each committed create/update/delete.

- Webhooks get ``POST`` with the ``x-ms-dynamics-*`` headers; auth ``httpheader`` adds configured
  headers, ``webhookkey`` adds ``?code=<key>``, ``httpquerystring`` adds query pairs. Over 256 KB the
  context is stripped (``ParentContext``, ``InputParameters``, ``PreEntityImages``,
  ``PostEntityImages`` emptied) and ``x-ms-dynamics-msg-size-exceeded: true`` is added. A 502/503/504
  is retried once, like the real service; anything else non-2xx or a network error counts as a failure.
- Service Bus endpoints: ``publish(body, properties)`` gets the same JSON with the
  ``http://schemas.microsoft.com/xrm/2011/Claims/*`` properties; over 192 KB the stripped context with
  property ``MessageMaxSizeExceeded``; still too big -> not sent (counted as a failure).
- Echo marker: a write made with ``?tag=<t>`` carries ``{"key": "tag", "value": t}`` in
  ``SharedVariables``; ``MSCRM.BypassCustomPluginExecution: true`` adds
  ``{"key": "IsBypassCustomPluginExecution", "value": true}``. Both still notify (our endpoints stand
  for Microsoft-registered steps, which the bypass header doesn't skip).
- Sending is a background asyncio task on the server's loop, so it happens after the response and a
  failing receiver never affects the request. ``load_rows`` (bulk load) does not notify.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from sandbox.dataverse.schema import Schema, Table
from sandbox.dataverse.service import Change

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims/"
WEBHOOK_LIMIT = 256 * 1024
SERVICE_BUS_LIMIT = 192 * 1024
MESSAGES = ("Create", "Update", "Delete")
AUTH_TYPES = ("none", "httpheader", "webhookkey", "httpquerystring")
Publish = Callable[[bytes, dict[str, str]], None]


@dataclass
class Organization:
    name: str = "sandbox"
    url: str = "https://sandbox.crm.dynamics.com"
    organization_id: str = "4ef5b371-0000-4000-8000-000000000001"
    user_id: str = "75c2dd85-0000-4000-8000-000000000002"
    business_unit_id: str = "e2b9dd85-0000-4000-8000-000000000003"

    @property
    def domain(self) -> str:
        return urlsplit(self.url).hostname or self.url


@dataclass
class Endpoint:
    id: str
    kind: str  # "webhook" | "servicebus"
    tables: frozenset[str] | None = None  # logical names; None = every table
    messages: frozenset[str] | None = None
    url: str = ""
    auth: str = "none"
    auth_values: dict[str, str] = field(default_factory=dict)
    publish: Publish | None = None

    def wants(self, change: Change) -> bool:
        return (self.tables is None or change.table.logical_name in self.tables) and \
            (self.messages is None or change.message in self.messages)

    def describe(self) -> dict[str, Any]:
        # Never echo auth values: they are secrets (like serviceendpoint.authvalue, write-only).
        return {"id": self.id, "kind": self.kind, "url": self.url, "auth": self.auth,
                "tables": sorted(self.tables) if self.tables is not None else None,
                "messages": sorted(self.messages) if self.messages is not None else None}


def wcf_date(value: str) -> str:
    """Stored ``YYYY-MM-DD[THH:MM:SSZ]`` -> ``/Date(<ms since epoch>)/``."""
    if len(value) == 10:
        dt = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    else:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"/Date({int(dt.timestamp() * 1000)})/"


def _typed(kind: str, **fields: Any) -> dict[str, Any]:
    return {"__type": f"{kind}:{CONTRACTS}", **fields}


def entity_reference(logical: str, record_id: str) -> dict[str, Any]:
    return _typed("EntityReference", Id=record_id, KeyAttributes=[], LogicalName=logical, Name=None, RowVersion=None)


def attribute_value(schema: Schema, table: Table, column: str, value: Any) -> Any:
    col = table.columns[column]
    if value is None:
        return None
    if col.is_lookup:
        return entity_reference(col.target or "", value)
    if col.type == "picklist":
        return _typed("OptionSetValue", Value=value)
    if col.type == "money":
        return _typed("Money", Value=value)
    if col.type in ("datetime", "dateonly"):
        return wcf_date(value)
    if col.type == "bool":
        return bool(value)
    return value


def entity(schema: Schema, table: Table, record_id: str, row: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    # each attribute once, as the real AttributeCollection (a create that names the primary id in its
    # body lists it among the changed columns too)
    attrs = [{"key": c, "value": attribute_value(schema, table, c, row.get(c))}
             for c in dict.fromkeys(columns) if c in table.columns and (row.get(c) is not None or c != "versionnumber")]
    return _typed("Entity", Attributes=attrs, EntityState=None, FormattedValues=[], Id=record_id,
                  KeyAttributes=[], LogicalName=table.logical_name, RelatedEntities=[],
                  RowVersion=str(row.get("versionnumber")) if row.get("versionnumber") is not None else None)


def build_context(schema: Schema, change: Change, org: Organization) -> dict[str, Any]:
    table, rid = change.table, change.record_id
    shared: list[dict[str, Any]] = []
    if change.tag:
        shared.append({"key": "tag", "value": change.tag})
    if change.bypass_plugins:
        shared.append({"key": "IsBypassCustomPluginExecution", "value": True})
    post: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if change.message == "Delete" or change.row is None:
        target: dict[str, Any] = entity_reference(table.logical_name, rid)
    else:
        row = change.row
        target = entity(schema, table, rid, row, change.changed or row.keys())
        full = [c for c, v in row.items() if v is not None]
        post = [{"key": "AsynchronousStepPrimaryName", "value": entity(schema, table, rid, row, full)}]
        if change.message == "Create":
            outputs = [{"key": "id", "value": rid}]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return {
        "BusinessUnitId": org.business_unit_id,
        "CorrelationId": change.correlation_id or str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserId": org.user_id,
        "InputParameters": [{"key": "Target", "value": target}],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": change.message,
        "Mode": 1,
        "OperationCreatedOn": f"/Date({now_ms})/",
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": org.organization_id,
        "OrganizationName": org.name,
        "OutputParameters": outputs,
        "OwningExtension": entity_reference("sdkmessageprocessingstep", str(uuid.uuid4())),
        "ParentContext": None,
        "PostEntityImages": post,
        "PreEntityImages": [],
        "PrimaryEntityId": rid,
        "PrimaryEntityName": table.logical_name,
        "RequestId": str(uuid.uuid4()),
        "SecondaryEntityName": "none",
        "SharedVariables": shared,
        "Stage": 40,
        "UserId": org.user_id,
    }


def encode(context: dict[str, Any]) -> bytes:
    # DataContractJsonSerializer escapes '/' as '\/'; so do we, byte for byte like the real payload.
    return json.dumps(context, separators=(",", ":")).replace("/", "\\/").encode()


def strip(context: dict[str, Any]) -> dict[str, Any]:
    return {**context, "ParentContext": None, "InputParameters": [], "PreEntityImages": [], "PostEntityImages": []}


class Notifier:
    def __init__(self, schema: Schema, org: Organization | None = None, timeout: float = 60.0,
                 max_in_flight: int = 64) -> None:
        self.schema = schema
        self.org = org or Organization()
        self.timeout = timeout
        self.endpoints: dict[str, Endpoint] = {}
        self.counters: Counter[str] = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    # --- registration ----------------------------------------------------------------------------
    def _filters(self, tables: Iterable[str] | None, messages: Iterable[str] | None
                 ) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        tset = None
        if tables is not None:
            names = set()
            for t in tables:
                table = self.schema.tables.get(t) or self.schema.table_for_set(t)
                if table is None:
                    raise ValueError(f"unknown table {t!r}")
                names.add(table.logical_name)
            tset = frozenset(names)
        mset = None
        if messages is not None:
            mset = frozenset(m.capitalize() for m in messages)
            if not mset <= set(MESSAGES):
                raise ValueError(f"messages must be among {MESSAGES}")
        return tset, mset

    def register_webhook(self, url: str, *, tables: Iterable[str] | None = None,
                         messages: Iterable[str] | None = None, auth: str = "none",
                         auth_values: dict[str, str] | None = None) -> str:
        """Register a webhook; ``auth_values``: header pairs (httpheader), ``{"code": key}``
        (webhookkey) or query pairs (httpquerystring)."""
        auth = auth.lower()
        if auth not in AUTH_TYPES:
            raise ValueError(f"auth must be one of {AUTH_TYPES}")
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be http(s)")
        if auth == "webhookkey" and not (auth_values or {}).get("code"):
            raise ValueError("webhookkey auth needs auth_values={'code': <key>}")
        tset, mset = self._filters(tables, messages)
        eid = str(uuid.uuid4())
        with self._lock:
            self.endpoints[eid] = Endpoint(eid, "webhook", tset, mset, url, auth, dict(auth_values or {}))
        return eid

    def register_service_bus(self, publish: Publish, *, tables: Iterable[str] | None = None,
                             messages: Iterable[str] | None = None) -> str:
        tset, mset = self._filters(tables, messages)
        eid = str(uuid.uuid4())
        with self._lock:
            self.endpoints[eid] = Endpoint(eid, "servicebus", tset, mset, publish=publish)
        return eid

    def unregister(self, endpoint_id: str) -> bool:
        with self._lock:
            return self.endpoints.pop(endpoint_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self.endpoints.clear()

    # --- sending ---------------------------------------------------------------------------------
    def submit(self, changes: list[Change]) -> None:
        """Called once a unit commits; schedules delivery without waiting for it."""
        with self._lock:
            endpoints = list(self.endpoints.values())
        jobs = [(c, e) for c in changes for e in endpoints if e.wants(c)]
        if not jobs:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self.loop = loop
            for change, ep in jobs:
                task = loop.create_task(self._send(change, ep))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif self.loop is not None and self.loop.is_running():
            for change, ep in jobs:
                asyncio.run_coroutine_threadsafe(self._send(change, ep), self.loop)
        else:
            for change, ep in jobs:  # no server loop (in-process use): deliver now, synchronously
                asyncio.run(self._send(change, ep, own_client=True))

    @property
    def pending(self) -> int:
        """Notifications scheduled and not yet delivered (or given up)."""
        return len(self._tasks)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _send(self, change: Change, ep: Endpoint, own_client: bool = False) -> None:
        try:
            context = build_context(self.schema, change, self.org)
            if ep.kind == "servicebus":
                self._publish(change, ep, context)
            else:
                await self._post(change, ep, context, own_client)
        except Exception:  # a broken receiver or publisher must never break the emulator
            self.counters[f"{ep.kind}_failures"] += 1

    def _publish(self, change: Change, ep: Endpoint, context: dict[str, Any]) -> None:
        props = {f"{CLAIMS}EntityLogicalName": change.table.logical_name,
                 f"{CLAIMS}RequestName": change.message,
                 f"{CLAIMS}Organization": self.org.url,
                 f"{CLAIMS}User": self.org.user_id,
                 f"{CLAIMS}InitiatingUser": self.org.user_id}
        body = encode(context)
        if len(body) > SERVICE_BUS_LIMIT:
            body = encode(strip(context))
            if len(body) > SERVICE_BUS_LIMIT:
                self.counters["servicebus_too_large"] += 1
                self.counters["servicebus_failures"] += 1
                return
            props["MessageMaxSizeExceeded"] = "true"
            self.counters["servicebus_size_exceeded"] += 1
        assert ep.publish is not None
        ep.publish(body, props)
        self.counters["servicebus_published"] += 1

    async def _post(self, change: Change, ep: Endpoint, context: dict[str, Any], own_client: bool) -> None:
        body = encode(context)
        headers = {"content-type": "application/json",
                   "x-ms-dynamics-organization": self.org.domain,
                   "x-ms-dynamics-entity-name": change.table.logical_name,
                   "x-ms-dynamics-request-name": change.message,
                   "x-ms-correlation-request-id": context["CorrelationId"]}
        if len(body) > WEBHOOK_LIMIT:
            body = encode(strip(context))
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
            self.counters["webhook_size_exceeded"] += 1
        url = ep.url
        if ep.auth == "httpheader":
            headers.update(ep.auth_values)
        elif ep.auth in ("webhookkey", "httpquerystring"):
            pairs = {"code": ep.auth_values["code"]} if ep.auth == "webhookkey" else ep.auth_values
            url += ("&" if "?" in url else "?") + urlencode(pairs)
        if own_client:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                await self._post_with_retry(client, url, body, headers)
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._sem = asyncio.Semaphore(self._max_in_flight)
        assert self._sem is not None
        async with self._sem:
            await self._post_with_retry(self._client, url, body, headers)

    async def _post_with_retry(self, client: httpx.AsyncClient, url: str, body: bytes,
                               headers: dict[str, str]) -> None:
        for attempt in (1, 2):
            try:
                resp = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                self.counters["webhook_failures"] += 1
                return
            if 200 <= resp.status_code < 300:
                self.counters["webhook_deliveries"] += 1
                return
            if resp.status_code in (502, 503, 504) and attempt == 1:
                self.counters["webhook_retries"] += 1
                continue  # the one extra attempt the real service makes
            self.counters["webhook_failures"] += 1
            return

    def stats(self) -> dict[str, int]:
        return dict(self.counters)
