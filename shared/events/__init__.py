"""Inbound change notifications: parse, validate and route Dataverse and Finance events.

Engine-side only (no ``azure.functions``): the HTTP and ingress-queue triggers call
:mod:`shared.events.intake` and publish what it returns.
"""

from shared.events.control import ControlNumberTracker, ControlStamp, Stale
from shared.events.errors import (
    InvalidShape,
    MalformedJson,
    PayloadTooLarge,
    Rejection,
    Unauthorized,
    UnknownEntity,
    UnknownTable,
    UnsupportedMediaType,
    UnsupportedMessage,
)
from shared.events.finance import is_newer
from shared.events.intake import accept_dataverse, accept_finance
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.events.result import IntakeResult

__all__ = [
    "ChangeNotification",
    "ControlNumberTracker",
    "ControlStamp",
    "IntakeResult",
    "InvalidShape",
    "MalformedJson",
    "Operation",
    "Origin",
    "PayloadTooLarge",
    "Rejection",
    "Stale",
    "Unauthorized",
    "UnknownEntity",
    "UnknownTable",
    "UnsupportedMediaType",
    "UnsupportedMessage",
    "accept_dataverse",
    "accept_finance",
    "is_newer",
]
