"""The state store: ledger, checkpoints, error records and map run state.

``StateStore`` is the interface; ``SqliteStateStore`` (embedded default) and ``TableStateStore``
(Azure Table Storage) implement it; ``create_state_store(settings)`` picks one.
"""

from .base import StateStore
from .errors import ConcurrencyError, NotFoundError, StateStoreError
from .factory import create_state_store
from .models import (
    Checkpoint,
    ErrorClassification,
    ErrorRecord,
    ErrorReport,
    ErrorStatus,
    LedgerEntry,
    MapState,
    RunState,
)
from .scrub import scrub
from .sqlite import SqliteStateStore

__all__ = [
    "Checkpoint",
    "ConcurrencyError",
    "ErrorClassification",
    "ErrorRecord",
    "ErrorReport",
    "ErrorStatus",
    "LedgerEntry",
    "MapState",
    "NotFoundError",
    "RunState",
    "SqliteStateStore",
    "StateStore",
    "StateStoreError",
    "create_state_store",
    "scrub",
]
