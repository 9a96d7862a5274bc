"""Finance business events: parse, check and route to the maps where Finance is a source.

The body is one JSON object. Envelope members are Finance's own (apis.md §9, business-events docs):

    BusinessEventId            str, required   e.g. "CustCustomerV3UpdatedBusinessEvent"
    BusinessEventLegalEntity   str             the legal entity (dataAreaId) the event fired in
    ControlNumber              int, required   increasing per event, gaps allowed -> the version
    EventId                    GUID, required  -> the change id (upper case, as Finance sends it)
    EventTime                  "/Date(ms)/"    -> the time (EventTimeIso8601 is preferred if present)
    EventTimeIso8601           ISO 8601
    ContextRecordSubject, InitiatingUserAADObjectId, MajorVersion, MinorVersion,
    ParentContextRecordSubjects                read by nobody here

Per-entity create/update/delete events (the emulator's and this project's convention; Finance has no
built-in ones, they are custom business events) add:

    EntityName   str   the public entity name or entity set, e.g. CustCustomerV3Entity or CustomersV3
    EntitySetName str  (the emulator sends it too; informational)
    Operation    str   Create | Update | Delete
    Keys         {field: value}  the natural key fields incl. dataAreaId

``EntityName`` and ``Operation`` may be left out when ``BusinessEventId`` follows
``<AOT name without 'Entity'><Created|Updated|Deleted>BusinessEvent`` (the emulator's naming); key
fields may also sit at the top level instead of in ``Keys``; ``dataAreaId`` falls back to
``BusinessEventLegalEntity``.

When an endpoint is activated Finance sends a test message [INFERRED shape: its BusinessEventId names
a test contract, e.g. BusinessEventsTestEndpointContract, and it names no entity]. It is accepted and
produces nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.catalog.models import Catalog, Side, TableMap
from shared.events.control import ControlStamp
from shared.events.errors import InvalidShape, UnknownEntity, shown
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.events.result import IntakeResult
from shared.events.xrm import read_guid, read_identifier, read_int, read_wcf_date
from shared.mapping.compiler import CompiledMap, compile_map

_CONVENTION = re.compile(r"(?P<base>[A-Za-z_][A-Za-z0-9_]*?)(?P<op>Created|Updated|Deleted)BusinessEvent")
_EVENT_OPERATIONS = {"Created": Operation.CREATE, "Updated": Operation.UPDATE, "Deleted": Operation.DELETE}
OPERATIONS = {"Create": Operation.CREATE, "Update": Operation.UPDATE, "Delete": Operation.DELETE}
MAX_KEY_VALUE_LENGTH = 1000
MAX_EVENT_ID_LENGTH = 256
ENVELOPE = frozenset({
    "BusinessEventId", "BusinessEventLegalEntity", "ContextRecordSubject", "ControlNumber", "EventId",
    "EventTime", "EventTimeIso8601", "InitiatingUserAADObjectId", "MajorVersion", "MinorVersion",
    "ParentContextRecordSubjects", "EntityName", "EntitySetName", "Operation", "Keys",
})


@dataclass(frozen=True)
class BusinessEvent:
    """A checked business event. ``entity`` is None only for the activation test message."""

    event_id: str
    business_event_id: str
    control_number: int
    time: datetime | None
    entity: str | None
    operation: Operation
    legal_entity: str | None
    fields: dict[str, Any]  # candidate key fields by Finance field name (see _fields)

    @property
    def is_test(self) -> bool:
        return self.entity is None


def is_newer(control_number: int, last_seen: int | None) -> bool:
    """True when an event with ``control_number`` is newer than the last one applied.

    Control numbers only increase, with gaps (apis.md §9): anything not strictly greater is a
    duplicate or arrived out of order. Compare per (entity, legal entity, key)."""
    return last_seen is None or control_number > last_seen


def _text(value: Any, path: str, *, limit: int = MAX_EVENT_ID_LENGTH) -> str:
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    raise InvalidShape(path, f"must be a non-empty text of at most {limit} characters, got {shown(value)}")


def _time(data: dict[str, Any]) -> datetime | None:
    iso = data.get("EventTimeIso8601")
    if iso is not None:
        try:
            parsed = datetime.fromisoformat(_text(iso, "EventTimeIso8601", limit=40))
        except ValueError:
            raise InvalidShape("EventTimeIso8601", f"must be an ISO 8601 date-time, got {shown(iso)}") from None
        if parsed.tzinfo is None:
            raise InvalidShape("EventTimeIso8601", "must carry a time zone (Z or an offset)")
        return parsed.astimezone(UTC)
    if data.get("EventTime") is not None:
        return read_wcf_date(data["EventTime"], "EventTime")
    return None


def _key_value(value: Any, path: str) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_KEY_VALUE_LENGTH and value.isprintable():
        return value
    raise InvalidShape(path, f"must be a text or whole number (a key field), got {shown(value)}")


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """Candidate key fields: top-level members outside the envelope, overridden by ``Keys``.
    Values are checked only when a map needs them (other contract fields may be anything)."""
    fields = {name: value for name, value in data.items() if name not in ENVELOPE}
    keys = data.get("Keys")
    if keys is not None:
        if not isinstance(keys, dict):
            raise InvalidShape("Keys", f"must be an object of key fields, got {shown(keys)}")
        fields.update(keys)
    return fields


def parse_business_event(data: Any) -> BusinessEvent:
    if not isinstance(data, dict):
        raise InvalidShape("", f"the body must be a business event JSON object, got {shown(data)}")
    if "BusinessEventId" not in data:
        raise InvalidShape("BusinessEventId", "is missing")
    event_name = _text(data["BusinessEventId"], "BusinessEventId")
    convention = _CONVENTION.fullmatch(event_name)
    entity_name = data.get("EntityName")
    if entity_name is None and convention is None and "test" in event_name.casefold():
        return BusinessEvent(
            event_id="", business_event_id=event_name,
            control_number=0, time=None, entity=None, operation=Operation.UNKNOWN, legal_entity=None, fields={},
        )
    if "EventId" not in data:
        raise InvalidShape("EventId", "is missing")
    read_guid(data["EventId"], "EventId")
    if "ControlNumber" not in data:
        raise InvalidShape("ControlNumber", "is missing")
    control = read_int(data["ControlNumber"], "ControlNumber")

    if entity_name is not None:
        entity = read_identifier(entity_name, "EntityName", "an entity name or entity set")
    elif convention is not None:
        entity = convention["base"] + "Entity"
    else:
        raise UnknownEntity(
            f"BusinessEventId {shown(event_name)} names no entity: send EntityName", path="BusinessEventId"
        )
    operation_name = data.get("Operation")
    if operation_name is not None:
        if not isinstance(operation_name, str) or operation_name not in OPERATIONS:
            raise InvalidShape("Operation", f"must be Create, Update or Delete, got {shown(operation_name)}")
        operation = OPERATIONS[operation_name]
    elif convention is not None:
        operation = _EVENT_OPERATIONS[convention["op"]]
    else:
        operation = Operation.UNKNOWN
    legal = data.get("BusinessEventLegalEntity")
    return BusinessEvent(
        event_id=str(data["EventId"]),
        business_event_id=event_name,
        control_number=control,
        time=_time(data),
        entity=entity,
        operation=operation,
        legal_entity=None if legal is None else _text(legal, "BusinessEventLegalEntity", limit=8),
        fields=_fields(data),
    )


def _maps_for(entity: str, catalog: Catalog) -> list[TableMap]:
    """By entity name or entity set; the CSDL type name (``LegalEntity``) as its AOT name too."""
    return catalog.by_finance_entity(entity) or catalog.by_finance_entity(entity + "Entity")


def map_key(fields: Mapping[str, Any], legal_entity: str | None, m: TableMap, compiled: CompiledMap,
            *, where: str = "Keys") -> str:
    """The integration key of the Finance row named by ``fields`` (Finance field names), the company
    falling back to ``legal_entity``; ``where`` is the member path the fields were read from."""
    fields = dict(fields)
    if m.company is not None and fields.get(m.company.finance_field) is None:
        fields[m.company.finance_field] = legal_entity
    row: dict[str, Any] = {}
    for name in ([m.company.finance_field] if m.company else []) + list(m.finance.keys):
        if fields.get(name) is None:
            raise InvalidShape(f"{where}.{name}", f"is missing (a key field of map {m.name!r})")
        row[name] = _key_value(fields[name], f"{where}.{name}")
    try:
        key = compiled.integration_key(Side.FINANCE, row)
    except (TypeError, ValueError) as exc:
        raise InvalidShape(where, f"do not form a key of map {m.name!r}: {str(exc)[:80]}") from None
    if any(part is None for part in key):
        raise InvalidShape(where, f"do not form a key of map {m.name!r}: a part is missing")
    return compiled.key_string(Side.FINANCE, row)


def control_stamp(notifications: Sequence[ChangeNotification], catalog: Catalog, legal_entity: str | None,
                  control_number: int) -> ControlStamp:
    """The row a business event is about, for ControlNumber tracking (see :mod:`shared.events.control`):
    the canonical entity and integration key of the first routed map by name."""
    first = min(notifications, key=lambda n: n.map)
    assert first.key is not None  # Finance-sourced notifications always carry the key
    return ControlStamp(entity=catalog.maps[first.map].finance.entity, legal_entity=(legal_entity or "").upper(),
                        record_key=first.key, control_number=control_number)


def route_event(
    event: BusinessEvent,
    catalog: Catalog,
    compiled: Mapping[str, CompiledMap],
    *,
    origin: Origin,
    received_at: datetime,
    correlation_id: str | None = None,
) -> IntakeResult:
    """One notification per map on the event's entity that takes Finance as a source."""
    if event.entity is None:
        return IntakeResult((), ignored_reason="Finance endpoint activation test message")
    maps = _maps_for(event.entity, catalog)
    if not maps:
        raise UnknownEntity(f"no map covers the Finance entity {event.entity!r}", path="EntityName")
    sourced = [m for m in maps if Side.FINANCE in m.sources]
    if not sourced:
        names = ", ".join(m.name for m in maps)
        return IntakeResult((), ignored_reason=f"entity {event.entity!r} is only a target (maps: {names}); nothing to sync")
    notifications = []
    for m in sourced:
        cm = compiled.get(m.name) or compile_map(m, catalog)
        notifications.append(ChangeNotification(
            map=m.name,
            source=Side.FINANCE,
            key=map_key(event.fields, event.legal_entity, m, cm),
            operation=event.operation,
            version=event.control_number,
            time=event.time or received_at,
            correlation_id=correlation_id or event.event_id,
            change_id=event.event_id,
            origin=origin,
        ))
    return IntakeResult(tuple(notifications),
                        control=control_stamp(notifications, catalog, event.legal_entity, event.control_number))


__all__ = ["BusinessEvent", "control_stamp", "is_newer", "map_key", "parse_business_event", "route_event"]
