"""The embedded broker (Service Bus semantics in SQLite) and the Transport on top of it."""

from .broker import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    SESSION_ID_IS_NULL,
    EntityCounts,
    EntityInfo,
    LocalBroker,
    Readiness,
    SessionLock,
)
from .filters import SqlFilter
from .transport import LocalBrokerTransport

__all__ = [
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "SESSION_ID_IS_NULL",
    "EntityCounts",
    "EntityInfo",
    "LocalBroker",
    "LocalBrokerTransport",
    "Readiness",
    "SessionLock",
    "SqlFilter",
]
