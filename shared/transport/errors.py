"""Transport errors as types; callers decide from the type, never from message text."""

from __future__ import annotations


class TransportError(Exception):
    """Base of every transport error."""


class EntityNotFoundError(TransportError):
    """No queue, topic or subscription of that name."""


class MessageLockLostError(TransportError):
    """The lock token is unknown or its lock expired: the message may already be redelivered."""


class SessionLockedError(TransportError):
    """Another receiver holds the session lock."""


class SessionLockLostError(TransportError):
    """The caller's session lock expired or was released."""


class MessageNotFoundError(TransportError):
    """No message with that sequence number (dead letter to replay, scheduled message to cancel)."""


class MessageTooLargeError(TransportError):
    """One message is larger than the entity accepts, even alone in a batch."""


class FilterSyntaxError(TransportError, ValueError):
    """A subscription SQL filter the local broker cannot parse."""
