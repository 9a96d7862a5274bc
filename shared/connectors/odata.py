"""OData literals, key segments and query strings: the ONE place values are escaped for a URL.

Every value that goes into a URL (a key segment or a ``$filter``) passes through :func:`literal`,
which doubles single quotes inside strings, and then through :func:`_pct`, which percent-encodes
whatever the URL syntax would misread (``/ ? # % & +``, spaces, non-ASCII). Doing both in one
module means a value like ``x') or ('1'='1`` can only ever be a string, never OData syntax.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from uuid import UUID

# Characters kept as-is: OData syntax we write ourselves plus RFC 3986 unreserved ones.
_PATH_SAFE = "()=,'-._~:@!$*"
_QUERY_SAFE = "()=,'-._~:@!$*/"


@dataclass(frozen=True)
class EnumValue:
    """A Finance enum literal, e.g. ``Microsoft.Dynamics.DataEntities.NoYes'Yes'``."""

    enum_type: str
    member: str


Key = UUID | str | Mapping[str, Any]


def literal(value: Any) -> str:
    """The OData literal for ``value`` (not yet percent-encoded).

    Strings are quoted with inner single quotes doubled; GUIDs are bare; datetimes are ISO 8601 in
    UTC with ``Z``; booleans ``true``/``false``; ``None`` is ``null``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in an OData literal; give a timezone")
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, EnumValue):
        return f"{value.enum_type}'{value.member.replace(chr(39), chr(39) * 2)}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no OData literal for {type(value).__name__}")


def _pct(text: str, safe: str) -> str:
    return quote(text, safe=safe, encoding="utf-8")


def key_segment(key: Key) -> str:
    """The URL key segment, e.g. ``(5e2c...)`` or ``(dataAreaId='usmf',ProjectId='P%2F1')``.

    A bare string is taken as a GUID (Dataverse primary key) and must parse as one.
    """
    if isinstance(key, UUID):
        return f"({key})"
    if isinstance(key, str):
        return f"({UUID(key)})"
    if not key:
        raise ValueError("empty key")
    parts = ",".join(f"{name}={literal(value)}" for name, value in key.items())
    return "(" + _pct(parts, _PATH_SAFE) + ")"


def entity_path(entity_set: str, key: Key) -> str:
    """``entity_set(key)``, the relative URL of one row."""
    return entity_set + key_segment(key)


def filter_expr(template: str, *values: Any) -> str:
    """Fill ``{}`` placeholders in a ``$filter`` template with escaped literals.

    ``filter_expr("msdyn_name eq {} and msdyn_quantity gt {}", name, 2)``. The template is the
    caller's own code; values from data only ever enter as literals.
    """
    return template.format(*(literal(v) for v in values))


def query_string(params: Mapping[str, str | int | None]) -> str:
    """``$select=a,b&$filter=...`` percent-encoded; ``None`` values are left out."""
    items = [(k, str(v)) for k, v in params.items() if v is not None]
    return "&".join(f"{_pct(k, '$')}={_pct(v, _QUERY_SAFE)}" for k, v in items)
