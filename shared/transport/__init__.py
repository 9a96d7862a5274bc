"""The transport: publish, schedule, dead letters and replay.

``Transport`` is the interface; ``ServiceBusTransport`` (Azure) and ``LocalBrokerTransport`` (the
embedded :class:`LocalBroker`) implement it; ``create_transport(settings)`` picks one.
"""

from .base import Transport
from .errors import (
    EntityNotFoundError,
    FilterSyntaxError,
    MessageLockLostError,
    MessageNotFoundError,
    MessageTooLargeError,
    SessionLockedError,
    SessionLockLostError,
    TransportError,
)
from .factory import create_transport
from .local import LocalBroker, LocalBrokerTransport, SessionLock
from .messages import REPLAY_OF, OutboundMessage, ReceivedMessage, SubQueue, subscription_path

__all__ = [
    "REPLAY_OF",
    "EntityNotFoundError",
    "FilterSyntaxError",
    "LocalBroker",
    "LocalBrokerTransport",
    "MessageLockLostError",
    "MessageNotFoundError",
    "MessageTooLargeError",
    "OutboundMessage",
    "ReceivedMessage",
    "SessionLock",
    "SessionLockLostError",
    "SessionLockedError",
    "SubQueue",
    "Transport",
    "TransportError",
    "create_transport",
    "subscription_path",
]
