"""Stable identities and seeded choices that any generator can recompute from an index.

Streaming means a child never looks its parent up in a list: it derives the parent's GUID, number or
company from the parent's index, with the same pure functions the parent's generator used.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib

_MASK = (1 << 64) - 1
# The namespace every demo GUID is a uuid5 of; changing it changes every generated data set.
DEMO_NAMESPACE = uuid.UUID("6d1f3c52-8a0e-4c36-9b8e-3f9d8f1d2a41")
_NS_BYTES = DEMO_NAMESPACE.bytes


def mix(seed: int, salt: str, index: int) -> int:
    """A 64-bit hash of (seed, salt, index) (splitmix64 finaliser): the same choice every time it is asked."""
    x = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(salt.encode()) * 0xBF58476D1CE4E5B9 + index) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def pick(seed: int, salt: str, index: int, n: int) -> int:
    """A seeded choice in ``range(n)`` for item ``index``."""
    return mix(seed, salt, index) % n


def guid(seed: int, table: str, key: str) -> str:
    """The Dataverse primary id of row ``key`` (its natural key, or an index) of ``table`` in the data
    set of ``seed``. ``World.id`` caches it for parents, which their children ask for over and over."""
    # uuid.uuid5 by hand: the same value, a third of the cost (it is on every row's path)
    h = bytearray(hashlib.sha1(_NS_BYTES + f"{seed}/{table}/{key}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
