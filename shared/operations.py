"""Operator actions on a running integration: status, pause and resume, errors, replay, dismiss.

Used by the admin HTTP API (functions/admin.py, through shared/ops_http.py) and the operator CLI
(cli/commands/ops.py); knows nothing of either. Results are JSON-able dicts. Problems are types:
:class:`UnknownMap`, :class:`~shared.state.errors.NotFoundError` (an error id), :class:`NotReplayable`,
:class:`InvalidArgument`; each front end turns them into its own status or exit code.

Backlog: what the transport can tell per map subscription, through a :class:`BacklogProbe`. A count
the backend cannot give (no management rights, an entity not created yet, Service Bus's scheduled
messages, which sit on the topic rather than a subscription) is ``None``, never 0.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.catalog import Catalog
from shared.events.notification import ChangeNotification, Origin
from shared.state.base import StateStore
from shared.state.errors import NotFoundError
from shared.state.models import ErrorRecord, ErrorStatus, RunState
from shared.transport.base import Transport
from shared.transport.messages import REPLAY_OF, OutboundMessage, subscription_path

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.transport.local import LocalBroker

log = logging.getLogger("dualsync.operations")

MAX_MESSAGE_ID = 128  # Service Bus MessageId
MAX_LIST_LIMIT = 1000
ALL_STATUSES = "all"


class UnknownMap(LookupError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no map named {name!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class NotReplayable(ValueError):
    """The error is not open, or holds no notification that can be published again."""


class InvalidArgument(ValueError):
    """A filter or limit an operator gave that makes no sense (bad status, limit out of range)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def error_view(record: ErrorRecord) -> dict[str, Any]:
    return _jsonable(asdict(record))


# --- backlog -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Backlog:
    """Messages waiting on one map's subscription; ``None`` where the backend cannot tell."""

    active: int | None = None
    scheduled: int | None = None
    dead_letters: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


class BacklogProbe(Protocol):
    async def backlog(self, topic: str, subscription: str) -> Backlog: ...


class TransportProbe:
    """What any :class:`Transport` can say: active and dead-letter counts (scheduled unknown)."""

    def __init__(self, transport: Transport):
        self.transport = transport

    async def backlog(self, topic: str, subscription: str) -> Backlog:
        try:
            active = await self.transport.active_count(topic, subscription)
            dead = await self.transport.dead_letter_count(topic, subscription)
        except Exception as exc:  # a count is a nicety: status must still answer
            log.warning("backlog of %s/%s unknown: %s", topic, subscription, type(exc).__name__)
            return Backlog()
        return Backlog(active=active, dead_letters=dead)


class LocalBrokerProbe:
    """The local broker knows active, scheduled and dead-letter counts per subscription."""

    def __init__(self, broker: LocalBroker):
        self.broker = broker

    async def backlog(self, topic: str, subscription: str) -> Backlog:
        from shared.transport.errors import EntityNotFoundError

        try:
            counts = await self.broker.counts(subscription_path(topic, subscription))
        except EntityNotFoundError:  # the sandbox has not created this subscription
            return Backlog()
        return Backlog(active=counts.active, scheduled=counts.scheduled, dead_letters=counts.dead_letter)


class ServiceBusProbe:
    """Counts from the Service Bus management API (needs ``Manage`` rights; without them, unknown).

    Scheduled messages live on the topic, not on a subscription, so ``scheduled`` stays ``None``.
    """

    def __init__(self, admin: Any):
        self.admin = admin  # azure.servicebus.aio.management.ServiceBusAdministrationClient

    async def backlog(self, topic: str, subscription: str) -> Backlog:
        try:
            props = await self.admin.get_subscription_runtime_properties(topic, subscription)
        except Exception as exc:  # unauthorised, missing entity, network: unknown, not zero
            log.warning("backlog of %s/%s unknown: %s", topic, subscription, type(exc).__name__)
            return Backlog()
        return Backlog(active=int(props.active_message_count),
                       dead_letters=int(props.dead_letter_message_count))

    async def close(self) -> None:
        await self.admin.close()


def backlog_probe(settings: Settings, transport: Transport) -> BacklogProbe:
    """The richest probe the configured transport allows."""
    from shared.settings import TransportKind
    from shared.transport.local import LocalBrokerTransport

    if isinstance(transport, LocalBrokerTransport):
        return LocalBrokerProbe(transport.broker)
    if settings.transport is TransportKind.SERVICEBUS:
        from azure.servicebus.aio.management import ServiceBusAdministrationClient

        if settings.servicebus_connection is not None:
            return ServiceBusProbe(ServiceBusAdministrationClient.from_connection_string(
                settings.servicebus_connection.get_secret_value()))
        if settings.servicebus_namespace:
            from azure.identity.aio import DefaultAzureCredential


            credential = DefaultAzureCredential(**settings.azure_credential_kwargs())
            return ServiceBusProbe(ServiceBusAdministrationClient(settings.servicebus_namespace, credential))
    return TransportProbe(transport)


# --- last success ------------------------------------------------------------------------------------
def last_success_checkpoint(map_name: str) -> str:
    return f"last-success/{map_name}"


class SuccessMarker:
    """Records when a map last applied a change, for status. Writes at most once per ``interval``
    seconds per map and process, so a busy map does not double its state-store writes."""

    def __init__(self, state: StateStore, interval: float = 30.0, clock: Any = time.monotonic):
        self.state = state
        self.interval = interval
        self.clock = clock
        self._written: dict[str, float] = {}

    async def mark(self, map_name: str, at: datetime | None = None) -> bool:
        now = self.clock()
        last = self._written.get(map_name)
        if last is not None and now - last < self.interval:
            return False
        self._written[map_name] = now
        when = (at or datetime.now(UTC)).astimezone(UTC)
        await self.state.put_checkpoint(last_success_checkpoint(map_name), {"at": when.isoformat()})
        return True


# --- the actions -------------------------------------------------------------------------------------
def _status_filter(status: str | None) -> ErrorStatus | None:
    if status is None or status == ALL_STATUSES:
        return None
    try:
        return ErrorStatus(status)
    except ValueError:
        choices = ", ".join([*(s.value for s in ErrorStatus), ALL_STATUSES])
        raise InvalidArgument(f"status {status!r} is not one of {choices}") from None


def replay_message(note: ChangeNotification, record: ErrorRecord) -> OutboundMessage:
    """The notification to publish again for ``record``: attempt 0, origin replay.

    Its message id is new per error record and occurrence: a fixed suffix would collide with an
    earlier replay of the same change (a replay that failed again is a new record) and duplicate
    detection would silently drop it. Replaying the same occurrence twice keeps the same id, so a
    double click publishes once.
    """
    message = note.model_copy(update={"attempt": 0, "origin": Origin.REPLAY}).to_message()
    suffix = f"~replay-{record.id[:12]}-{record.occurrences}"
    base = message.message_id or note.message_id
    props = dict(message.application_properties)
    props[REPLAY_OF] = record.message_id or base
    return OutboundMessage(
        body=message.body, message_id=base[: MAX_MESSAGE_ID - len(suffix)] + suffix,
        session_id=message.session_id, application_properties=props,
        content_type=message.content_type, correlation_id=message.correlation_id)


def default_ingress_queues() -> frozenset[str]:
    """The ingress queue names when the settings do not rename them."""
    from shared.settings import Settings

    return frozenset(str(Settings.model_fields[f].default) for f in ("ingress_queue_dataverse", "ingress_queue_finance"))


def ingress_replay_message(record: ErrorRecord) -> OutboundMessage:
    """The raw event an ingress queue rejected, as kept (:func:`shared.events.ingress.kept_payload`):
    the JSON body again (or the text, when it was kept whole) with its application properties."""
    payload = record.payload
    if not isinstance(payload, dict) or "body" not in payload:
        raise NotReplayable(f"error {record.id} holds no kept ingress message")
    body = payload["body"]
    props = {str(k): str(v) for k, v in (payload.get("properties") or {}).items()}
    content_type = props.pop("content-type", None)
    if isinstance(body, str):
        data = body.encode("utf-8")
        if payload.get("body_bytes") not in (None, len(data)):
            raise NotReplayable(f"error {record.id} kept only the first {len(body)} characters of "
                                f"{payload['body_bytes']} bytes")
    else:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        content_type = content_type or "application/json"
    suffix = f"~replay-{record.id[:12]}-{record.occurrences}"
    base = record.message_id or record.key
    props[REPLAY_OF] = str(props.get(REPLAY_OF) or base)
    return OutboundMessage(body=data, message_id=base[: MAX_MESSAGE_ID - len(suffix)] + suffix,
                           application_properties=props, content_type=content_type)


class Operations:
    """``ingress_queues``: their names are accepted where a map name filters errors, and their errors
    replay to the queue (callers with settings pass ``settings.ingress_queue_*``)."""

    def __init__(self, catalog: Catalog, state: StateStore, transport: Transport, topic: str,
                 backlog: BacklogProbe | None = None, ingress_queues: Iterable[str] | None = None):
        self.catalog = catalog
        self.state = state
        self.transport = transport
        self.topic = topic
        self.probe: BacklogProbe = backlog or TransportProbe(transport)
        self.ingress_queues = frozenset(ingress_queues) if ingress_queues is not None else default_ingress_queues()

    def check_map(self, name: str) -> None:
        if name not in self.catalog:
            raise UnknownMap(name)

    def check_error_scope(self, name: str) -> None:
        """A map, or an ingress queue (errors of messages no map could be named for)."""
        if name not in self.catalog and name not in self.ingress_queues:
            raise UnknownMap(name)

    async def _last_success(self, name: str) -> str | None:
        checkpoint = await self.state.get_checkpoint(last_success_checkpoint(name))
        return None if checkpoint is None else checkpoint.data.get("at")

    async def status(self) -> dict[str, Any]:
        """Per map: run state, last success, open errors, backlog (null where unknown)."""
        maps: dict[str, Any] = {}
        states = {s.map: s for s in await self.state.list_map_states()}
        for m in self.catalog:
            s = states.get(m.name)
            maps[m.name] = {
                "state": s.state.value if s else RunState.RUNNING.value,
                "since": s.since.isoformat() if s and s.since else None,
                "reason": s.reason if s else "",
                "last_success": await self._last_success(m.name),
                "open_errors": await self.state.count_errors(m.name),
                "backlog": (await self.probe.backlog(self.topic, m.name)).as_dict(),
            }
        paused = sorted(n for n, v in maps.items() if v["state"] == RunState.PAUSED.value)
        return {"topic": self.topic, "maps": maps, "paused": paused,
                "open_errors": sum(v["open_errors"] for v in maps.values())}

    async def pause(self, name: str, reason: str = "") -> dict[str, Any]:
        self.check_map(name)
        s = await self.state.set_map_state(name, RunState.PAUSED, reason=reason or "paused by an operator")
        return {"map": name, "state": s.state.value, "reason": s.reason}

    async def resume(self, name: str) -> dict[str, Any]:
        self.check_map(name)
        s = await self.state.set_map_state(name, RunState.RUNNING, reason="resumed")
        return {"map": name, "state": s.state.value}

    async def errors(self, map_name: str | None = None, status: str | None = "open",
                     limit: int = 100) -> list[dict[str, Any]]:
        """Newest first. ``status`` is open, replayed, dismissed, or all (``None``)."""
        if map_name is not None:
            self.check_error_scope(map_name)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIST_LIMIT}, not {limit}")
        wanted = _status_filter(status)
        return [error_view(r) for r in await self.state.list_errors(map_name, wanted, limit)]

    async def error(self, error_id: str) -> dict[str, Any]:
        record = await self.state.get_error(error_id)
        if record is None:
            raise NotFoundError(f"no error with id {error_id!r}")
        return error_view(record)

    async def replay(self, error_id: str) -> dict[str, Any]:
        """Publish the kept notification again; the handler reads the source's current state."""
        record = await self.state.get_error(error_id)
        if record is None:
            raise NotFoundError(f"no error with id {error_id!r}")
        if record.status is not ErrorStatus.OPEN:
            raise NotReplayable(f"error {error_id} is {record.status.value}, not open")
        if record.map in self.ingress_queues and record.map not in self.catalog:
            raw = ingress_replay_message(record)
            await self.transport.publish(record.map, [raw])  # back to the queue it came from
            await self.state.set_error_status(error_id, ErrorStatus.REPLAYED)
            return {"id": error_id, "status": ErrorStatus.REPLAYED.value, "map": record.map,
                    "message_id": raw.message_id}
        try:
            note = ChangeNotification.from_message(json.dumps(record.payload).encode())
        except Exception as exc:
            raise NotReplayable(f"error {error_id} holds no readable notification: {exc}") from None
        message = replay_message(note, record)
        await self.transport.publish(self.topic, [message])
        await self.state.set_error_status(error_id, ErrorStatus.REPLAYED)
        return {"id": error_id, "status": ErrorStatus.REPLAYED.value, "map": record.map,
                "message_id": message.message_id}

    async def replay_all(self, map_name: str | None = None, page: int = 500) -> dict[str, Any]:
        """Replay every open error (of one map, or all) that was last seen before this call.

        Page by page until none is left. A replay that fails again while this runs re-opens or adds
        a record seen after the start; those are left for the next call, so this always ends.
        """
        if map_name is not None:
            self.check_error_scope(map_name)
        started = datetime.now(UTC)
        replayed: list[str] = []
        skipped: list[str] = []
        ignored: set[str] = set()
        while True:
            listed = await self.state.list_errors(map_name, ErrorStatus.OPEN, page + len(ignored))
            batch = [r for r in listed if r.id not in ignored]
            if not batch:
                break
            for record in batch:
                if record.last_seen > started:
                    ignored.add(record.id)
                    continue
                try:
                    await self.replay(record.id)
                    replayed.append(record.id)
                except NotReplayable:
                    ignored.add(record.id)
                    skipped.append(record.id)
        return {"replayed": replayed, "not_replayable": skipped}

    async def dismiss(self, error_id: str) -> dict[str, Any]:
        if await self.state.get_error(error_id) is None:
            raise NotFoundError(f"no error with id {error_id!r}")
        record = await self.state.set_error_status(error_id, ErrorStatus.DISMISSED)
        return {"id": record.id, "status": record.status.value, "map": record.map}
