"""Strict, bounded JSON decoding of untrusted request bodies.

``json.loads`` is lenient in ways a hostile sender can use: it accepts ``NaN``/``Infinity``,
keeps the last of duplicated object members (so two readers may see different values), turns
``1e999`` into infinity and recurses once per nesting level (deep input raises RecursionError, or
worse, exhausts the stack). This module rejects all of those with :class:`MalformedJson`, and
measures nesting *before* the parser runs.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from shared.events.errors import MalformedJson, shown

MAX_DEPTH = 64

# A JSON string (possessive, and running to the end when unterminated, so hostile input can make it
# neither backtrack nor rescan), or anything else that is not a bracket. What is left after removing
# both is the sequence of brackets outside strings.
_STRING_OR_FILLER = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[^\[\]{}"]++', re.DOTALL)
_UTF8_BOM = b"\xef\xbb\xbf"


def decode_utf8(body: bytes) -> str:
    """The body as text. Invalid UTF-8 is a 400; a leading byte-order mark is tolerated."""
    try:
        return body.removeprefix(_UTF8_BOM).decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not valid UTF-8 (at byte {exc.start})") from None


def nesting_depth(text: str, limit: int) -> int:
    """Deepest bracket nesting outside strings; stops counting past ``limit``."""
    brackets = _STRING_OR_FILLER.sub("", text)
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise MalformedJson(f"the JSON literal {name} is not allowed (not standard JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJson(f"the number {shown(text)} is out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedJson(f"duplicated object member {shown(key)}")
        obj[key] = value
    return obj


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``body`` as one strict JSON value (see the module docstring)."""
    text = decode_utf8(body)
    if nesting_depth(text, max_depth) > max_depth:
        raise MalformedJson(f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_no_constants,
            parse_float=_finite_float,
        )
    except MalformedJson:
        raise
    except RecursionError:  # belt and braces: the depth scan should have caught it
        raise MalformedJson(f"the JSON nests deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise MalformedJson(f"the body holds an unreadable value: {str(exc)[:80]}") from None
