"""The one place that decides what a failure means: a table from error type to action.

Connectors already retried retryable calls within their budget; what reaches this table either
exhausted that budget or is permanent. The decision comes from the type, never from message text.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.connectors import errors as ce
from shared.mapping import MappingError
from shared.state.errors import ConcurrencyError
from shared.sync.outcome import Classification, DeadLetter, Outcome, Retry


class DependencyMissing(Exception):
    """A parent row (another map's record) is not on the target yet."""

    def __init__(self, parent_map: str, parent_key: str):
        self.parent_map = parent_map
        self.parent_key = parent_key
        super().__init__(f"parent {parent_map} {parent_key} is not on the target yet")


class ReferenceMissing(Exception):
    """A reference lookup found no row: reference data (a unit, a vendor account) that no map writes
    is missing in Dataverse. Nothing will bring it, so this is permanent until a user creates the
    row (or corrects the source) and replays. Names the map, record, field, value and table."""

    def __init__(self, map_name: str, key: str, field: str, what: str, value: str, entity_set: str,
                 columns: tuple[str, ...], fix: str):
        self.map_name = map_name
        self.key = key
        self.field = field
        self.value = value
        self.entity_set = entity_set
        self.columns = columns
        super().__init__(f"{map_name} {key}: {what} {value} not found in Dataverse {entity_set} "
                         f"({', '.join(columns)}) - {fix}")


@dataclass(frozen=True)
class Policy:
    """Bounds for rescheduled retries (seconds)."""

    dependency_attempts: int = 12  # about 2 hours with the delays below, then dead-letter
    transient_attempts: int = 8
    base_delay: float = 5.0
    max_delay: float = 900.0
    pause_delay: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * (2 ** attempt))


# error type -> (classification, retryable by rescheduling?)
# Order matters: the first matching type wins (subclasses before their bases).
TABLE: list[tuple[type[BaseException], Classification, bool]] = [
    (DependencyMissing, Classification.DEPENDENCY_MISSING, True),
    (ce.LookupTargetMissing, Classification.DEPENDENCY_MISSING, True),
    (ReferenceMissing, Classification.VALIDATION, False),
    (MappingError, Classification.MAPPING, False),
    (ce.Throttled, Classification.TRANSIENT_EXHAUSTED, True),
    (ce.Transient, Classification.TRANSIENT_EXHAUSTED, True),
    (ce.Precondition, Classification.CONFLICT, True),
    (ce.Conflict, Classification.CONFLICT, True),
    (ConcurrencyError, Classification.CONFLICT, True),
    (ce.Validation, Classification.VALIDATION, False),
    (ce.Auth, Classification.AUTH, False),
    (ce.NotFound, Classification.VALIDATION, False),
    (ce.ForeignLink, Classification.VALIDATION, False),
]


def decide(error: BaseException, attempt: int, policy: Policy) -> Outcome:
    """The outcome for ``error`` on the ``attempt``-th try (0 = first delivery)."""
    match = next(((c, r) for t, c, r in TABLE if isinstance(error, t)), None)
    if match is None:
        return DeadLetter(Classification.UNKNOWN, f"{type(error).__name__}: {error}")
    classification, retryable = match
    reason = str(error)
    if not retryable:
        return DeadLetter(classification, reason, _describe(error))
    limit = policy.dependency_attempts if classification is Classification.DEPENDENCY_MISSING \
        else policy.transient_attempts
    if attempt + 1 >= limit:
        return DeadLetter(classification, reason, f"gave up after {attempt + 1} attempts")
    delay = policy.delay(attempt)
    if isinstance(error, ce.Throttled) and error.retry_after:
        delay = max(delay, error.retry_after)
    return Retry(delay, classification, reason)


def _describe(error: BaseException) -> str:
    if isinstance(error, MappingError):
        return f"field {error.field}: {error.reason}"
    if isinstance(error, ReferenceMissing):
        return f"field {error.field}: no {error.entity_set} row with {error.value}"
    if isinstance(error, ce.ConnectorError):
        return f"{error.service} {error.method} {error.path} -> {error.status} {error.code}".strip()
    return type(error).__name__
