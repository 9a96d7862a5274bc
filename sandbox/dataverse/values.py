"""Column values: JSON from a request body or a URL literal -> stored form, and stored form -> JSON."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sandbox.dataverse import errors
from sandbox.dataverse.schema import EDM_TYPES, Column, Table
from sandbox.odata import ODataSyntaxError, parse_datetime


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_now_cache: tuple[int, str] = (0, "")


def now_text() -> str:
    """Current UTC time in stored form; formatted once per second (it is on every write's path)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _now_cache[1]


_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def to_guid(value: Any, edm: str = "Edm.Guid") -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if _CANONICAL_GUID.fullmatch(value):  # already the stored form: no UUID round trip
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise errors.type_mismatch(value, edm)


def to_storage(table: Table, col: Column, value: Any) -> Any:
    """Validate one body value for ``col`` and convert it to its stored form."""
    if value is None:
        return None
    kind = col.type
    edm = EDM_TYPES[kind]
    if kind in ("string", "memo"):
        if not isinstance(value, str):
            raise errors.type_mismatch(value, edm)
        if col.max_length is not None and len(value) > col.max_length:
            raise errors.too_long(col.name, table.logical_name, col.max_length)
        return value
    if kind in ("int", "picklist", "bigint"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.type_mismatch(value, edm)
        if kind == "picklist" and col.options and value not in col.options:
            raise errors.bad_option(col.name, table.logical_name, value, col.options)
        if kind == "int" and not -2147483648 <= value <= 2147483647:
            raise errors.type_mismatch(value, edm)
        return value
    if kind in ("decimal", "money"):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise errors.type_mismatch(value, edm)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise errors.type_mismatch(value, edm)
        return int(value)
    if kind == "datetime":
        if isinstance(value, datetime):
            return format_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))
        if isinstance(value, date):
            return f"{value.isoformat()}T00:00:00Z"
        if not isinstance(value, str):
            raise errors.type_mismatch(value, edm)
        try:
            return format_datetime(parse_datetime(value))
        except ODataSyntaxError:
            raise errors.type_mismatch(value, edm) from None
    if kind == "dateonly":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        try:
            return date.fromisoformat(value).isoformat() if isinstance(value, str) else _raise(value, edm)
        except ValueError:
            raise errors.type_mismatch(value, edm) from None
    if kind in ("guid", "lookup"):
        return to_guid(value, edm)
    raise errors.type_mismatch(value, edm)  # pragma: no cover - schema types are closed


def _raise(value: Any, edm: str) -> Any:
    raise errors.type_mismatch(value, edm)


def literal_to_storage(table: Table, col: Column, value: Any) -> Any:
    """A URL literal (key segment or ``$filter``) compared with ``col``: same rules as a body value,
    except that numbers may be compared with decimals and dates with date-times."""
    if value is None:
        return None
    if col.type in ("decimal", "money") and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return float(value)
    if col.type in ("string", "memo"):  # comparisons don't care about max length
        if not isinstance(value, str):
            raise errors.type_mismatch(value, EDM_TYPES[col.type])
        return value
    if col.type in ("int", "picklist", "bigint") and isinstance(value, Decimal):
        return float(value)
    if col.type == "picklist":
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.type_mismatch(value, "Edm.Int32")
        return value
    return to_storage(table, col, value)


def to_json(col: Column, value: Any) -> Any:
    """Stored form -> the Web API's JSON value."""
    if value is None:
        return None
    if col.type == "bool":
        return bool(value)
    return value
