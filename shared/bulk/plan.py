"""Which maps an initial sync runs, in which order, and from which side.

Order: topological over ``depends_on`` (dependencies outside the chosen maps are assumed in place),
in *generations*: every map of a generation has all its chosen dependencies in earlier ones, so the
maps of one generation are independent and run concurrently.

Master side: the map's ``initial_sync`` side, else its only source. A bidirectional map without a
master is synced from both sides, Finance first (the system of record for the financial data these
maps hold), then Dataverse for the rows Finance did not have: a row present on both sides ends as
Finance's version, a row present on one side only reaches the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

from shared.catalog.models import Side, TableMap


class InitialSyncPlanError(ValueError):
    """Unknown map names or a dependency cycle; the message names them."""


def sync_order(maps: Mapping[str, TableMap], chosen: Iterable[str] | None = None) -> list[list[str]]:
    """Generations of map names, dependencies first; names within a generation sorted."""
    names = list(chosen) if chosen else list(maps)
    unknown = sorted(n for n in names if n not in maps)
    if unknown:
        raise InitialSyncPlanError(f"unknown map(s): {', '.join(unknown)}; see `dualsync maps list`")
    wanted = set(names)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in wanted:
        sorter.add(name, *(d for d in maps[name].depends_on if d in wanted and d != name))
    try:
        sorter.prepare()
    except CycleError as exc:
        raise InitialSyncPlanError(f"dependency cycle: {' -> '.join(exc.args[1])}") from None
    generations: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        generations.append(ready)
        sorter.done(*ready)
    return generations


def master_sides(m: TableMap) -> tuple[Side, ...]:
    """The side(s) an initial sync reads, in order (see the module docstring)."""
    if m.initial_sync is not None:
        return (m.initial_sync,)
    if len(m.sources) == 1:
        return m.sources
    return (Side.FINANCE, Side.DATAVERSE)
