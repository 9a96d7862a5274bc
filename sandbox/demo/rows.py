"""The unit the generator yields, and the two sides' names."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
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


@lru_cache(maxsize=4096)  # a few hundred distinct days; the same text object for every row of a day
def day(d: date) -> str:
    return d.isoformat()


@lru_cache(maxsize=8192)
def stamp(d: date, hour: int = 9) -> str:
    """A UTC date-time on day ``d`` (Dataverse datetime columns, Finance DateTime fields)."""
    return f"{d.isoformat()}T{hour:02d}:00:00Z"


def money(x: float) -> float:
    return round(x, 2)
