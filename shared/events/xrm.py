"""Reading the JSON form of Microsoft.Xrm.Sdk types (DataContractJsonSerializer conventions).

What Dataverse webhooks and Service Bus endpoints send (apis.md §1.3):
- collections (InputParameters, Attributes, images, SharedVariables) are arrays of ``{key, value}``;
- polymorphic values name their type in ``__type``: ``"EntityReference:http://schemas.microsoft.com/
  xrm/2011/Contracts"``, ``OptionSetValue``, ``Money``, ``Entity``;
- dates are WCF dates ``/Date(ms)/`` or ``/Date(ms+hhmm)/``: milliseconds since the epoch in UTC, the
  offset only says which zone the sender was in.

Every reader takes the member path it is reading, so a rejection names exactly what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from shared.events.errors import InvalidShape, shown

_WCF_DATE = re.compile(r"/Date\((-?\d{1,15})([+-]\d{4})?\)/")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_KEY_LENGTH = 256  # longest key of a {key, value} pair we accept (attribute names are <= 50)


@dataclass(frozen=True)
class EntityRef:
    logical_name: str
    id: UUID
    name: str | None = None


@dataclass(frozen=True)
class XrmEntity:
    logical_name: str
    id: UUID | None
    attributes: dict[str, Any] = field(default_factory=dict)


def type_name(node: dict[str, Any], path: str) -> str | None:
    """The type part of ``__type`` (``Entity`` in ``Entity:http://...``), or None when absent."""
    raw = node.get("__type")
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > 256:
        raise InvalidShape(f"{path}.__type", "must be a type name such as 'Entity:http://schemas...'")
    return raw.split(":", 1)[0]


def read_guid(value: Any, path: str, *, optional: bool = False) -> UUID | None:
    if value is None and optional:
        return None
    if isinstance(value, str) and len(value) <= 38:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidShape(path, f"must be a GUID, got {shown(value)}")


def read_identifier(value: Any, path: str, what: str = "a logical name") -> str:
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value):
        return value
    raise InvalidShape(path, f"must be {what} (letters, digits, underscore), got {shown(value)}")


def read_wcf_date(value: Any, path: str) -> datetime:
    """A WCF date as an aware UTC datetime."""
    match = _WCF_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidShape(path, f"must be a date '/Date(ms)/' or '/Date(ms+hhmm)/', got {shown(value)}")
    try:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    except OverflowError:
        raise InvalidShape(path, f"is a date out of range: {shown(value)}") from None


def read_int(value: Any, path: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return value
    raise InvalidShape(path, f"must be a whole number from {minimum} to {maximum}, got {shown(value)}")


def read_pair_values(node: Any, path: str) -> dict[str, tuple[str, Any]]:
    """An array of ``{key, value}`` as a dict of (member path of the value, value); keys are unique."""
    problem = "must be an array of {key, value}"
    if not isinstance(node, list):
        raise InvalidShape(path, f"{problem}, got {shown(node)}")
    pairs: dict[str, tuple[str, Any]] = {}
    for i, item in enumerate(node):
        if not isinstance(item, dict) or "key" not in item or "value" not in item:
            raise InvalidShape(f"{path}[{i}]", f"must be a {{key, value}} object, got {shown(item)}")
        key = item["key"]
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidShape(f"{path}[{i}].key", f"must be a non-empty name, got {shown(key)}")
        if key in pairs:
            raise InvalidShape(f"{path}[{i}].key", f"{shown(key)} occurs more than once")
        pairs[key] = (f"{path}[{i}].value", item["value"])
    return pairs


def read_pairs(node: Any, path: str) -> dict[str, Any]:
    """An array of ``{key, value}`` as a plain dict; a key may occur once."""
    return {k: v for k, (_, v) in read_pair_values(node, path).items()}


def read_value(value: Any, path: str) -> Any:
    """An attribute value: scalars as they are (WCF date strings as datetimes), typed objects decoded."""
    if isinstance(value, str):
        return read_wcf_date(value, path) if _WCF_DATE.fullmatch(value) else value
    if not isinstance(value, dict):
        return value
    kind = type_name(value, path)
    if kind == "EntityReference":
        return read_entity_reference(value, path)
    if kind == "OptionSetValue":
        return read_int(value.get("Value"), f"{path}.Value", minimum=-(2**31), maximum=2**31 - 1)
    if kind == "Money":
        amount = value.get("Value")
        if isinstance(amount, int | float) and not isinstance(amount, bool):
            return Decimal(str(amount))
        raise InvalidShape(f"{path}.Value", f"must be a number, got {shown(amount)}")
    if kind == "Entity":
        return read_entity(value, path)
    return value  # other types (collections, aliased values) are kept as sent


def read_entity_reference(node: Any, path: str) -> EntityRef:
    if not isinstance(node, dict):
        raise InvalidShape(path, f"must be an EntityReference object, got {shown(node)}")
    kind = type_name(node, path)
    if kind not in (None, "EntityReference"):
        raise InvalidShape(f"{path}.__type", f"must be EntityReference, got {shown(node['__type'])}")
    name = node.get("Name")
    return EntityRef(
        logical_name=read_identifier(node.get("LogicalName"), f"{path}.LogicalName"),
        id=read_guid(node.get("Id"), f"{path}.Id"),  # type: ignore[arg-type]  # not optional: never None
        name=name if isinstance(name, str) else None,
    )


def read_entity(node: Any, path: str) -> XrmEntity:
    if not isinstance(node, dict):
        raise InvalidShape(path, f"must be an Entity object, got {shown(node)}")
    kind = type_name(node, path)
    if kind not in (None, "Entity"):
        raise InvalidShape(f"{path}.__type", f"must be Entity, got {shown(node['__type'])}")
    attributes = {
        name: read_value(value, value_path)
        for name, (value_path, value) in read_pair_values(node.get("Attributes"), f"{path}.Attributes").items()
    }
    return XrmEntity(
        logical_name=read_identifier(node.get("LogicalName"), f"{path}.LogicalName"),
        id=read_guid(node.get("Id"), f"{path}.Id", optional=True),
        attributes=attributes,
    )
