"""JSON for the emulators' per-row paths: orjson where it gives the same answer, the standard
library otherwise, so behaviour (values, error messages, bytes of ASCII text) does not change.

A staging row echoed in a Finance 201 has ~45 properties; ``json.dumps`` spent ~8 us on it, a
tenth of the emulator's CPU per batched row. orjson is an optional speed-up: without it (an
environment not yet reinstalled) everything goes through ``json``.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the sandbox extra installs it
    orjson = None  # type: ignore[assignment]


_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # digits -> "0", rest -> " "
_LONG_RUN = b"0" * 19


def _has_long_number(data: bytes) -> bool:
    """A run of 19+ digits anywhere (a regex search cost as much as json.loads)."""
    return _LONG_RUN in data.translate(_DIGITS_ONLY)


def loads(data: bytes) -> Any:
    """``json.loads(data)``, the same value. Whatever orjson refuses (NaN, infinities, lone
    surrogates, invalid JSON) or reads differently (integers of 19 digits or more, which it may
    turn into floats) goes to ``json.loads``, which accepts it or raises its own error."""
    if orjson is not None and not _has_long_number(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


_SCALARS = frozenset({str, int, bool, float, type(None)})


def _plain(row: dict[str, Any]) -> bool:
    """Scalars only, floats in the range where orjson and repr() write the same digits (checked on
    300,000 values); outside it they differ in the exponent (1e16 vs 1e+16)."""
    types = set(map(type, row.values()))
    if not types <= _SCALARS:
        return False
    return float not in types or all(v == 0.0 or 1e-4 <= abs(v) < 1e16
                                     for v in row.values() if type(v) is float)


def dumps_row(row: dict[str, Any]) -> bytes:
    """``json.dumps(row, separators=(",", ":")).encode()`` byte for byte, for a flat dict of JSON
    scalars (an entity as rendered). Anything else, non-ASCII text (``json`` writes ``\\u``
    escapes) and floats outside ``_plain`` go through ``json``."""
    if orjson is not None and _plain(row):
        try:
            out: bytes = orjson.dumps(row)
        except TypeError:  # an int beyond 64 bits, a nested or unknown type
            pass
        else:
            if out.isascii():
                return out
    return json.dumps(row, separators=(",", ":")).encode()
