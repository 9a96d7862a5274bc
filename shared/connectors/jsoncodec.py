"""JSON on the connectors' hot paths (page and row reads, batch and row writes) through orjson, with the
standard library's answer wherever the two could differ.

Reading pages and writing batches was a fifth of an initial sync's CPU in ``json``; orjson is several
times faster. It reads every JSON document the standard library reads to the same values except whole
numbers wider than 64 bits, which it reads as floats (a body with 19 digits in a row goes to ``json``). It writes the same JSON values
except NaN and infinities (``null`` where ``json`` writes the non-JSON ``NaN`` a service refuses), so a
body holding one is written by ``json``, as before.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # a digit -> "0", the rest -> " "
_WIDE = b"0" * 19  # 19 digits in a row: possibly wider than 64 bits, which orjson reads as a float


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``: the same value, or the same ``ValueError`` for a body that is not JSON."""
    raw = data.encode() if isinstance(data, str) else data
    if _WIDE in raw.translate(_DIGITS):  # a C pass over the bytes, far cheaper than the parse
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # raises json's own error for a body that is not JSON


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``
    as a JSON value (number spellings may differ: ``1e+16`` against ``1e16``)."""
    try:
        out: bytes = orjson.dumps(value)
    except TypeError:  # a type orjson does not write (an integer wider than 64 bits, a non-str key)
        return _std(value)
    if b"null" in out and _non_finite(value):
        return _std(value)
    return out


def _std(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _non_finite(value: Any) -> bool:
    # a loop over the values, recursing only into containers: bodies are mostly flat rows of scalars
    values = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else (value,)
    for v in values:
        kind = type(v)
        if kind is float:
            if not math.isfinite(v):
                return True
        elif kind is not str and kind is not int and kind is not bool and v is not None and _non_finite(v):
            return True
    return False
