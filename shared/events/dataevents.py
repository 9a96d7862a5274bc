"""Finance data events: create/update/delete of an OData entity, sent as a RemoteExecutionContext.

Shape (FO: business-events/data-events.md; apis.md §2, §9): the same RemoteExecutionContext JSON as a
Dataverse Service Bus endpoint sends, for the entity's virtual table in Dataverse. "The entity fields
will be included ... in the Target and PreImage properties of the InputParameters". So it is *not*
the business-event shape (no BusinessEventId, no ControlNumber), and :func:`accept_finance` tells the
two apart by ``MessageName``.

Naming [INFERRED from the Finance virtual tables, not stated on the data-events page]: the table is
``mserp_`` + the public entity name in lower case (``mserp_custcustomerv3entity``), attributes are
``mserp_`` + the field name in lower case (``mserp_customeraccount``, ``mserp_dataareaid``). Both are
matched case-insensitively, with or without the prefix.

The key fields come from ``Target`` (Create, Update) or ``PreImage`` (Delete, whose Target is only an
EntityReference). A stripped context (over the size limit: no InputParameters) names no key fields;
``PrimaryEntityId`` is the virtual row's Dataverse id, which the Finance side cannot be read by, so it
is rejected with that reason and kept in the error store (the polling timer still catches the change).

No ControlNumber: duplicates are caught by Service Bus duplicate detection on the notification's
message id (the change id is the context's ``OperationId``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.catalog.models import Catalog, Side, TableMap
from shared.events.dataverse import parse_context
from shared.events.errors import InvalidShape, UnknownEntity
from shared.events.finance import map_key
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.events.result import IntakeResult
from shared.events.xrm import XrmEntity, read_entity, read_pair_values
from shared.mapping.compiler import CompiledMap, compile_map

VIRTUAL_PREFIX = "mserp_"


def is_data_event(data: Any) -> bool:
    """A RemoteExecutionContext rather than a business event."""
    return isinstance(data, dict) and "BusinessEventId" not in data and "MessageName" in data


def _bare(name: str) -> str:
    lowered = name.lower()
    return lowered.removeprefix(VIRTUAL_PREFIX)


def _maps_for(table: str, catalog: Catalog) -> list[TableMap]:
    bare = _bare(table)
    return [m for m in catalog if bare in (m.finance.entity.lower(), m.finance.entity_set.lower())]


def _key_fields(entity: XrmEntity) -> dict[str, Any]:
    """Attributes by bare lower-case name; dates as Finance writes them in OData."""
    out: dict[str, Any] = {}
    for name, value in entity.attributes.items():
        if isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out[_bare(name)] = value
    return out


def _fields_for(m: TableMap, bare_fields: Mapping[str, Any]) -> dict[str, Any]:
    """The map's key fields under their Finance names (found case-insensitively)."""
    wanted = ([m.company.finance_field] if m.company else []) + list(m.finance.keys)
    return {name: bare_fields[name.lower()] for name in wanted if bare_fields.get(name.lower()) is not None}


def _row_entity(data: dict[str, Any], operation: Operation) -> tuple[str, XrmEntity]:
    if data.get("InputParameters") is None:
        raise InvalidShape("InputParameters", "are missing (a stripped data event names no key fields; "
                           "the polling timer picks the change up)")
    params = read_pair_values(data["InputParameters"], "InputParameters")
    member = "PreImage" if operation is Operation.DELETE else "Target"
    if member not in params:
        raise InvalidShape(f"InputParameters.{member}", "is missing: the data event carries the row's fields there")
    path, node = params[member]
    return path, read_entity(node, path)


def route_data_event(
    data: Any,
    headers: Mapping[str, str],
    catalog: Catalog,
    compiled: Mapping[str, CompiledMap],
    *,
    origin: Origin,
    received_at: datetime,
) -> IntakeResult:
    """One notification per map on the event's entity that takes Finance as a source."""
    change = parse_context(data, headers)
    maps = _maps_for(change.table, catalog)
    if not maps:
        raise UnknownEntity(f"no map covers the Finance entity of virtual table {change.table!r}",
                            path="PrimaryEntityName")
    sourced = [m for m in maps if Side.FINANCE in m.sources]
    if not sourced:
        names = ", ".join(m.name for m in maps)
        return IntakeResult((), ignored_reason=f"entity {change.table!r} is only a target (maps: {names}); "
                                               "nothing to sync")
    path, entity = _row_entity(data, change.operation)
    fields = _key_fields(entity)
    notifications = []
    for m in sourced:
        cm = compiled.get(m.name) or compile_map(m, catalog)
        notifications.append(ChangeNotification(
            map=m.name,
            source=Side.FINANCE,
            key=map_key(_fields_for(m, fields), None, m, cm, where=f"{path}.Attributes"),
            operation=change.operation,
            time=change.time or received_at,
            correlation_id=change.correlation_id,
            change_id=str(change.operation_id) if change.operation_id else None,
            origin=origin,
            depth=change.depth,
            tag=change.tag,
        ))
    return IntakeResult(tuple(notifications))
