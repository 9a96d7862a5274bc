"""Errors the state store raises, as types so callers never parse messages."""

from __future__ import annotations


class StateStoreError(Exception):
    """Base of every state-store error."""


class ConcurrencyError(StateStoreError):
    """The record changed (or appeared, or vanished) since the caller read it; read again and retry."""

    def __init__(self, kind: str, name: str, detail: str = "etag mismatch"):
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r}: {detail}")


class NotFoundError(StateStoreError, KeyError):
    """An id that does not exist (error records)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return str(self.args[0]) if self.args else "not found"
