"""The unit the generator yields, and the two sides' names."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, NamedTuple

Side = Literal["dataverse", "finance"]
DATAVERSE: Side = "dataverse"
FINANCE: Side = "finance"

Row = dict[str, Any]


class DemoRow(NamedTuple):
    """One row for one emulator: Dataverse rows in the Web API's JSON shape (lookups as
    ``_<column>_value`` GUIDs, which ``DataverseEmulator.load_rows`` takes), Finance rows in the OData
    entity's JSON shape (enums as symbols, dates as ISO text)."""

    side: Side
    entity_set: str
    row: Row


def dv(entity_set: str, row: Row) -> DemoRow:
    return DemoRow(DATAVERSE, entity_set, row)


def fo(entity_set: str, row: Row) -> DemoRow:
    return DemoRow(FINANCE, entity_set, row)


def day(d: date) -> str:
    return d.isoformat()


def stamp(d: date, hour: int = 9) -> str:
    """A UTC date-time on day ``d`` (Dataverse datetime columns, Finance DateTime fields)."""
    return f"{d.isoformat()}T{hour:02d}:00:00Z"


def money(x: float) -> float:
    return round(x, 2)
