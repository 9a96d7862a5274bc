"""What handling one change notification came to, and what the trigger does about it.

Outcomes are values, not exceptions: the trigger (a Service Bus function, the dev host, a test)
completes, reschedules or dead-letters the message according to the outcome's type.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.state.models import ErrorClassification

# The error store's categories are the one list of failure classifications.
Classification = ErrorClassification


@dataclass(frozen=True)
class Applied:
    """The target now holds the mapping of the source's current state (or the row was deleted)."""

    operation: str  # "upsert" | "delete"
    key: str


@dataclass(frozen=True)
class Skipped:
    """Nothing to write: stale, unchanged (our own echo), filtered out, or deletes not synced."""

    reason: str
    key: str | None = None


@dataclass(frozen=True)
class Retry:
    """Try again later: the notification is scheduled again after ``delay_seconds``."""

    delay_seconds: float
    classification: Classification
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    """A permanent failure: kept in the error store with its reason until replayed or dismissed."""

    classification: Classification
    reason: str
    description: str = ""


@dataclass(frozen=True)
class Parked:
    """The map is paused: the notification is kept (scheduled again) and handled after resume."""

    delay_seconds: float


Outcome = Applied | Skipped | Retry | DeadLetter | Parked
