"""Type conversions between Dataverse and Finance representations.

Each conversion is a pair of functions (towards Finance, towards Dataverse). They receive a non-null
value and raise ``ValueError`` / ``TypeError`` with a reason when the value is of the wrong type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from shared.catalog.models import Convert, ConvertType, Side

Converter = Callable[[Any], Any]

# Finance stores "no date" as 1900-01-01; Dataverse stores null.
FINANCE_EMPTY_DATE = "1900-01-01T00:00:00Z"


def _string(v: Any) -> str:
    if isinstance(v, bool | dict | list):
        raise TypeError(f"expected text, got {type(v).__name__}")
    return str(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | str | Decimal | float):
        raise TypeError(f"expected a whole number, got {type(v).__name__}")
    if isinstance(v, float) and not v.is_integer():
        raise ValueError("expected a whole number")
    return int(v)


def _number(scale: int) -> Converter:
    quantum = Decimal(1).scaleb(-scale)

    def convert(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | Decimal | str):
            raise TypeError(f"expected a number, got {type(v).__name__}")
        try:
            d = Decimal(str(v)) if not isinstance(v, Decimal) else v
        except InvalidOperation:
            raise ValueError("not a number") from None
        if not d.is_finite():
            raise ValueError("not a finite number")
        # JSON numbers on the wire: a float whose shortest repr is the decimal rounded to scale
        return float(d.quantize(quantum, rounding=ROUND_HALF_UP))

    return convert


def _bool_to_noyes(v: Any) -> str:
    if not isinstance(v, bool):
        raise TypeError(f"expected true/false, got {type(v).__name__}")
    return "Yes" if v else "No"


def _noyes_to_bool(v: Any) -> bool:
    if isinstance(v, str):
        symbol = v.rsplit("'", 2)[-2] if v.endswith("'") and "'" in v[:-1] else v
        if symbol == "Yes":
            return True
        if symbol == "No":
            return False
    raise ValueError("expected the NoYes symbol 'Yes' or 'No'")


def _parse_datetime(v: Any) -> datetime:
    if not isinstance(v, str):
        raise TypeError(f"expected an ISO 8601 date-time string, got {type(v).__name__}")
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        raise ValueError("date-time without a time zone; expected UTC ('Z') or an offset")
    return dt.astimezone(UTC)


def _datetime_utc(v: Any) -> str | None:
    dt = _parse_datetime(v)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _datetime_utc_to_dataverse(v: Any) -> str | None:
    if v == FINANCE_EMPTY_DATE:
        return None
    return _datetime_utc(v)


def _date_to_finance(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a date 'YYYY-MM-DD', got {type(v).__name__}")
    try:
        d = date.fromisoformat(v)
    except ValueError:
        raise ValueError("not a date 'YYYY-MM-DD'") from None
    return f"{d.isoformat()}T00:00:00Z"


def _date_to_dataverse(v: Any) -> str | None:
    if v == FINANCE_EMPTY_DATE:
        return None
    if isinstance(v, str) and len(v) == 10:
        return date.fromisoformat(v).isoformat()
    return _parse_datetime(v).date().isoformat()


def _upper(v: Any) -> str:
    return _string(v).upper()


def _lower(v: Any) -> str:
    return _string(v).lower()


def converters(spec: Convert) -> dict[Side, Converter]:
    """The two functions for ``spec``, keyed by the side the value is written to."""
    t = spec.to
    if t is ConvertType.STRING:
        return {Side.FINANCE: _string, Side.DATAVERSE: _string}
    if t is ConvertType.INT:
        return {Side.FINANCE: _int, Side.DATAVERSE: _int}
    if t in (ConvertType.DECIMAL, ConvertType.MONEY):
        scale = spec.scale if spec.scale is not None else 2
        f = _number(scale)
        return {Side.FINANCE: f, Side.DATAVERSE: f}
    if t is ConvertType.BOOL_NOYES:
        return {Side.FINANCE: _bool_to_noyes, Side.DATAVERSE: _noyes_to_bool}
    if t is ConvertType.DATE:
        return {Side.FINANCE: _date_to_finance, Side.DATAVERSE: _date_to_dataverse}
    if t is ConvertType.DATETIME_UTC:
        return {Side.FINANCE: _datetime_utc, Side.DATAVERSE: _datetime_utc_to_dataverse}
    if t is ConvertType.UPPER_LOWER:
        return {Side.FINANCE: _lower, Side.DATAVERSE: _upper}
    raise AssertionError(f"unhandled conversion {t}")  # pragma: no cover - enum is closed
