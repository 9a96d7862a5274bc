"""The failures a chaos run causes on purpose, and the sorting of the error store against them.

Everything else the error store holds after a run is unexplained: an engine bug (a child before its
parent kept as permanent, a fault's answer misclassified, a duplicate create refused as invalid) or a
harness bug (a fault that answers 4xx). The run reports both kinds; the test allows no unexplained
validation failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.chaos.driver import Target
from shared.catalog.models import Side


@dataclass(frozen=True)
class IntendedFailure:
    """One row the run breaks on purpose: the error record it must produce, recognised by its reason."""

    map: str
    key: str  # the record as the error store names it: the Dataverse guid, or the Finance integration key
    classification: str
    reason_contains: str

    def matches(self, error: dict[str, Any]) -> bool:
        return (error["map"], error["key"], error["classification"]) == (self.map, self.key, self.classification) \
            and self.reason_contains in error["reason"]


def record_of(target: Target) -> str:
    """The Dataverse guid in a target's path, ``entity_set(<guid>)`` (how the error store keys the record)."""
    if target.side is not Side.DATAVERSE:
        raise ValueError("intended failures are made on Dataverse rows (the error store keys them by guid)")
    return target.path[target.path.index("(") + 1: target.path.rindex(")")].lower()


def names_too_long(targets: Iterable[Target], field: str = "ProjectName") -> list[IntendedFailure]:
    """Rows given a value longer than the Finance field holds: Finance refuses the write (400)."""
    return [IntendedFailure(t.map, record_of(t), "validation", f"'{field}'") for t in targets]


@dataclass(frozen=True)
class SortedErrors:
    intended: list[dict[str, Any]]
    unintended: list[dict[str, Any]]
    missing: list[IntendedFailure]  # intended failures the error store does not hold

    def figures(self, detail: int = 10) -> dict[str, Any]:
        return {
            "intended": len(self.intended),
            "unintended": len(self.unintended),
            "missing_intended": len(self.missing),
            # one record per row and cause; occurrences are the notifications that failed with it
            "occurrences": sum(int(e.get("occurrences") or 1) for e in [*self.intended, *self.unintended]),
            "unintended_detail": [
                {k: e.get(k) for k in ("map", "key", "classification", "reason", "occurrences")}
                for e in self.unintended[:detail]],
        }


def sort_errors(kept: Sequence[dict[str, Any]], intended: Sequence[IntendedFailure]) -> SortedErrors:
    ours = [e for e in kept if any(i.matches(e) for i in intended)]
    others = [e for e in kept if not any(i.matches(e) for i in intended)]
    missing = [i for i in intended if not any(i.matches(e) for e in kept)]
    return SortedErrors(ours, others, missing)
