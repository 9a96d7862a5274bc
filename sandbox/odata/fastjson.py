"""JSON for the emulators' per-row paths: orjson where it gives the same answer, the standard
library otherwise, so behaviour (values, error messages, bytes of ASCII text) does not change.

A staging row echoed in a Finance 201 has ~45 properties; ``json.dumps`` spent ~8 us on it, a
tenth of the emulator's CPU per batched row. orjson is an optional speed-up: without it (an
environment not yet reinstalled) everything goes through ``json``.
"""

from __future__ import annotations

import json
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the sandbox extra installs it
    orjson = None  # type: ignore[assignment]


_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def loads(data: bytes) -> Any:
    """``json.loads(data)``, the same value. Whatever orjson refuses (NaN, infinities, lone
    surrogates, invalid JSON) or reads differently (integers of 19 digits or more, which it may
    turn into floats) goes to ``json.loads``, which accepts it or raises its own error."""
    if orjson is not None and not _LONG_NUMBER.search(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


_SCALARS = (str, int, bool, type(None))


def _plain(value: Any) -> bool:
    # A scalar orjson writes as json does. Floats: in this range both write the shortest repr the
    # same way (checked on 300,000 values); outside it they differ in the exponent (1e16 vs 1e+16)
    if type(value) is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16
    return type(value) in _SCALARS


def dumps_row(row: dict[str, Any]) -> bytes:
    """``json.dumps(row, separators=(",", ":")).encode()`` byte for byte, for a flat dict of JSON
    scalars (an entity as rendered). Anything else, non-ASCII text (``json`` writes ``\\u``
    escapes) and floats outside ``_plain`` go through ``json``."""
    if orjson is not None and all(_plain(v) for v in row.values()):
        try:
            out: bytes = orjson.dumps(row)
        except TypeError:  # an int beyond 64 bits, a nested or unknown type
            pass
        else:
            if out.isascii():
                return out
    return json.dumps(row, separators=(",", ":")).encode()
