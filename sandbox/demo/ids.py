"""Stable identities and seeded choices that any generator can recompute from an index.

Streaming means a child never looks its parent up in a list: it derives the parent's GUID, number or
company from the parent's index, with the same pure functions the parent's generator used.
"""

from __future__ import annotations

import uuid
import zlib
from functools import lru_cache

_MASK = (1 << 64) - 1
# The namespace every demo GUID is a uuid5 of; changing it changes every generated data set.
DEMO_NAMESPACE = uuid.UUID("6d1f3c52-8a0e-4c36-9b8e-3f9d8f1d2a41")


def mix(seed: int, salt: str, index: int) -> int:
    """A 64-bit hash of (seed, salt, index) (splitmix64 finaliser): the same choice every time it is asked."""
    x = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(salt.encode()) * 0xBF58476D1CE4E5B9 + index) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def pick(seed: int, salt: str, index: int, n: int) -> int:
    """A seeded choice in ``range(n)`` for item ``index``."""
    return mix(seed, salt, index) % n


@lru_cache(maxsize=1 << 16)  # parents are asked for over and over by their children; bounded on purpose
def guid(seed: int, table: str, key: str) -> str:
    """The Dataverse primary id of row ``key`` of ``table`` in the data set of ``seed``."""
    return str(uuid.uuid5(DEMO_NAMESPACE, f"{seed}/{table}/{key}"))


def fresh_guid(seed: int, table: str, key: str) -> str:
    """Like :func:`guid` for rows nobody points at (actuals, estimates): not cached."""
    return str(uuid.uuid5(DEMO_NAMESPACE, f"{seed}/{table}/{key}"))
