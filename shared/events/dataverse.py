"""Dataverse change notifications: the RemoteExecutionContext a webhook or Service Bus endpoint sends.

:func:`parse_context` reads and checks the context (apis.md §1.3, §2); :func:`route_change` turns it
into one :class:`ChangeNotification` per map that takes Dataverse as a source. The notification only
names the record (table + primary id); the handler reads the row, so a stripped context (payload over
256 KB on webhooks, 192 KB on Service Bus: no InputParameters, no images) routes just as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.catalog.models import Catalog, Side
from shared.events.errors import InvalidShape, UnknownTable, UnsupportedMessage, shown
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.events.result import IntakeResult
from shared.events.xrm import (
    EntityRef,
    XrmEntity,
    read_entity,
    read_entity_reference,
    read_guid,
    read_identifier,
    read_int,
    read_pair_values,
    read_pairs,
    read_wcf_date,
)

OPERATIONS = {"Create": Operation.CREATE, "Update": Operation.UPDATE, "Delete": Operation.DELETE}
# Webhook header, and the Service Bus message property, that mark a stripped context.
SIZE_EXCEEDED_MARKERS = ("x-ms-dynamics-msg-size-exceeded", "messagemaxsizeexceeded")
CORRELATION_HEADER = "x-ms-correlation-request-id"
MAX_PARENT_CONTEXTS = 8  # how far up ParentContext we look for the echo tag
MAX_MARKER_LENGTH = 256


@dataclass(frozen=True)
class DataverseChange:
    """What one RemoteExecutionContext says happened."""

    table: str
    record_id: UUID
    message: str
    operation: Operation
    stripped: bool
    version: int | None = None
    time: datetime | None = None
    correlation_id: str | None = None
    operation_id: UUID | None = None
    depth: int | None = None
    tag: str | None = None
    target: XrmEntity | EntityRef | None = None
    post_images: dict[str, XrmEntity] = field(default_factory=dict)


def _marker(value: Any, path: str) -> str | None:
    """A short printable text (correlation id, tag), or None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and 0 < len(value) <= MAX_MARKER_LENGTH and value.isprintable():
        return value
    raise InvalidShape(path, f"must be a short printable text, got {shown(value)}")


# An entity read from the context, with its member path (for messages about its attributes).
Located = tuple[str, XrmEntity | EntityRef]


def _target(params: dict[str, tuple[str, Any]], operation: Operation, table: str) -> Located | None:
    """Create/Update carry the Entity, Delete an EntityReference (apis.md §1.3)."""
    if "Target" not in params:
        return None
    path, node = params["Target"]
    target = read_entity_reference(node, path) if operation is Operation.DELETE else read_entity(node, path)
    if target.logical_name != table:
        raise InvalidShape(
            f"{path}.LogicalName", f"must be the PrimaryEntityName {table!r}, got {shown(target.logical_name)}"
        )
    return path, target


def _images(ctx: dict[str, Any], member: str) -> dict[str, tuple[str, XrmEntity]]:
    """Images by alias, each with its member path."""
    node = ctx.get(member)
    if node is None:
        return {}
    return {alias: (path, read_entity(value, path)) for alias, (path, value) in read_pair_values(node, member).items()}


def _version(entities: list[Located]) -> int | None:
    """The row's versionnumber from Target or a post image (the highest, if they disagree)."""
    found: list[int] = []
    for path, entity in entities:
        if isinstance(entity, XrmEntity) and entity.attributes.get("versionnumber") is not None:
            found.append(read_int(entity.attributes["versionnumber"], f"{path}.Attributes.versionnumber"))
    return max(found) if found else None


def _tag(ctx: dict[str, Any]) -> str | None:
    """SharedVariables 'tag' (a Web API ``?tag=`` marker), here or in a parent context."""
    node: Any = ctx
    path = ""
    for _ in range(MAX_PARENT_CONTEXTS):
        if not isinstance(node, dict):
            raise InvalidShape(path or "ParentContext", f"must be an execution context object, got {shown(node)}")
        shared = node.get("SharedVariables")
        if shared is not None:
            variables = read_pairs(shared, f"{path}SharedVariables")
            if variables.get("tag") is not None:
                return _marker(variables["tag"], f"{path}SharedVariables.tag")
        node = node.get("ParentContext")
        if node is None:
            return None
        path += "ParentContext."
    return None


def parse_context(data: Any, headers: Mapping[str, str]) -> DataverseChange:
    """Check a decoded RemoteExecutionContext; ``headers`` are lower-cased request headers or
    Service Bus application properties."""
    if not isinstance(data, dict):
        raise InvalidShape("", f"the body must be a RemoteExecutionContext JSON object, got {shown(data)}")
    message = data.get("MessageName")
    if not isinstance(message, str) or not message:
        raise InvalidShape("MessageName", f"must be the message name (Create, Update, Delete), got {shown(message)}")
    if "PrimaryEntityName" not in data:
        raise InvalidShape("PrimaryEntityName", "is missing")
    table = read_identifier(data["PrimaryEntityName"], "PrimaryEntityName", "a table logical name")
    if "PrimaryEntityId" not in data:
        raise InvalidShape("PrimaryEntityId", "is missing")
    record_id = read_guid(data["PrimaryEntityId"], "PrimaryEntityId")
    assert record_id is not None
    operation = OPERATIONS.get(message)
    if operation is None:
        raise UnsupportedMessage(
            f"MessageName {shown(message)} is not handled: register the step for Create, Update or Delete",
            path="MessageName",
        )

    params: dict[str, tuple[str, Any]] = {}
    if data.get("InputParameters") is not None:
        params = read_pair_values(data["InputParameters"], "InputParameters")
    target = _target(params, operation, table)
    post_images = _images(data, "PostEntityImages")
    located: list[Located] = ([target] if target else []) + list(post_images.values())
    _images(data, "PreEntityImages")  # checked, not used: the handler reads the current row

    created = data.get("OperationCreatedOn")
    correlation = headers.get(CORRELATION_HEADER)
    return DataverseChange(
        table=table,
        record_id=record_id,
        message=message,
        operation=operation,
        stripped=any(m in headers for m in SIZE_EXCEEDED_MARKERS),
        version=_version(located),
        time=None if created is None else read_wcf_date(created, "OperationCreatedOn"),
        correlation_id=_marker(correlation, CORRELATION_HEADER) if correlation is not None
        else _marker(data.get("CorrelationId"), "CorrelationId"),
        operation_id=read_guid(data.get("OperationId"), "OperationId", optional=True),
        depth=None if data.get("Depth") is None else read_int(data["Depth"], "Depth", maximum=1000),
        tag=_tag(data),
        target=target[1] if target else None,
        post_images={alias: entity for alias, (_, entity) in post_images.items()},
    )


def route_change(change: DataverseChange, catalog: Catalog, *, origin: Origin, received_at: datetime) -> IntakeResult:
    """One notification per map on the change's table that takes Dataverse as a source."""
    maps = catalog.by_dataverse_table(change.table)
    if not maps:
        raise UnknownTable(f"no map covers the Dataverse table {change.table!r}", path="PrimaryEntityName")
    sourced = [m for m in maps if Side.DATAVERSE in m.sources]
    if not sourced:
        names = ", ".join(m.name for m in maps)
        return IntakeResult(
            (), ignored_reason=f"table {change.table!r} is only a target (maps: {names}); nothing to sync"
        )
    return IntakeResult(tuple(
        ChangeNotification(
            map=m.name,
            source=Side.DATAVERSE,
            record_id=change.record_id,
            operation=change.operation,
            version=change.version,
            time=change.time or received_at,
            correlation_id=change.correlation_id,
            change_id=str(change.operation_id) if change.operation_id else None,
            origin=origin,
            depth=change.depth,
            tag=change.tag,
        )
        for m in sourced
    ))
