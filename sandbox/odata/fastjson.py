"""JSON for the emulators' per-row paths: orjson where it gives the same answer, the standard
library otherwise, so behaviour (values, error messages, bytes of ASCII text) does not change.

A staging row echoed in a Finance 201 has ~45 properties; ``json.dumps`` spent ~8 us on it, a
tenth of the emulator's CPU per batched row. Reading is the connectors' own codec
(``shared.connectors.jsoncodec.loads``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from shared.connectors.jsoncodec import loads  # the same reading rules as the connectors: one place

__all__ = ["dumps_row", "loads"]


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
    if _plain(row):
        try:
            out: bytes = orjson.dumps(row)
        except TypeError:  # an int beyond 64 bits, a nested or unknown type
            pass
        else:
            if out.isascii():
                return out
    return json.dumps(row, separators=(",", ":")).encode()
