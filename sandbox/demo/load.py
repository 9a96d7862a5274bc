"""Stream a demo data set into the two emulators, one entity set's run of rows at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import groupby, islice
from typing import Protocol

from sandbox.demo.generate import generate
from sandbox.demo.rows import DATAVERSE, DemoRow, Row


class DataverseTarget(Protocol):
    def load_rows(self, entity_set: str, rows: list[Row]) -> object: ...


class FinanceTarget(Protocol):
    def load_rows(self, entity_set: str, rows: list[Row], *, validate: bool = False) -> object: ...


def _chunks(rows: Iterator[DemoRow], size: int) -> Iterator[list[Row]]:
    while chunk := [r.row for r in islice(rows, size)]:
        yield chunk


def load(dataverse: DataverseTarget, finance: FinanceTarget, rows: int, seed: int, batch: int = 5000, *,
         counterparts: bool = False, validate: bool = False) -> dict[str, int]:
    """Generate and load; returns the number of rows loaded per entity set (entity set names don't
    clash between the two sides). ``validate`` makes Finance check mandatory fields and relations,
    which needs ``counterparts`` (Finance documents point at projects the sync has not created yet).
    Errors of the emulators propagate; rows of earlier chunks stay loaded."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    counts: Counter[str] = Counter()
    for (side, entity_set), run in groupby(generate(rows, seed, counterparts=counterparts),
                                           key=lambda r: (r.side, r.entity_set)):
        for chunk in _chunks(run, batch):
            if side == DATAVERSE:
                dataverse.load_rows(entity_set, chunk)
            else:
                finance.load_rows(entity_set, chunk, validate=validate)
            counts[entity_set] += len(chunk)
    return dict(counts)
