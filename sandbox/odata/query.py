"""System query options other than ``$filter``: ``$select``, ``$orderby``, ``$expand`` (with nested
options), ``$top`` — parsed into plain values; validation of names is the emulator's job."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.odata.literals import ODataSyntaxError


@dataclass(frozen=True)
class OrderBy:
    name: str
    descending: bool = False


@dataclass
class Expand:
    navigation: str
    select: list[str] | None = None
    options: dict[str, str] = field(default_factory=dict)  # other nested options, verbatim


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes (``a,b($select=c,d),e`` -> 3 parts)."""
    if sep not in text:  # the common case: nothing to split (keeps per-request cost low)
        if text.count("(") != text.count(")") or text.count("'") % 2:
            raise ODataSyntaxError(f"Unbalanced parentheses or quotes in '{text}'.", text, len(text))
        return [text]
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise ODataSyntaxError(f"Unbalanced parentheses in '{text}'.", text, i)
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise ODataSyntaxError(f"Unbalanced parentheses or quotes in '{text}'.", text, len(text))
    parts.append(text[start:])
    return parts


def parse_select(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",")]
    if any(not n for n in names):
        raise ODataSyntaxError(f"Syntax error in $select '{text}': empty item.", text, 0)
    return names


def parse_orderby(text: str) -> list[OrderBy]:
    result = []
    for item in split_top_level(text):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ODataSyntaxError(f"Syntax error in $orderby '{text}' at '{item.strip()}'.", text, 0)
        result.append(OrderBy(words[0], len(words) == 2 and words[1] == "desc"))
    return result


def parse_expand(text: str) -> list[Expand]:
    """``msdyn_project($select=msdyn_subject),ownerid`` -> two :class:`Expand` items."""
    result = []
    for item in split_top_level(text):
        item = item.strip()
        if not item:
            raise ODataSyntaxError(f"Syntax error in $expand '{text}': empty item.", text, 0)
        if "(" in item:
            if not item.endswith(")"):
                raise ODataSyntaxError(f"Syntax error in $expand '{text}' at '{item}'.", text, 0)
            nav, inner = item[: item.index("(")].strip(), item[item.index("(") + 1: -1]
            options: dict[str, str] = {}
            for opt in split_top_level(inner, ";"):
                if "=" not in opt:
                    raise ODataSyntaxError(f"Syntax error in $expand '{text}' at '{opt}'.", text, 0)
                k, v = opt.split("=", 1)
                options[k.strip()] = v.strip()
            select = options.pop("$select", None)
            result.append(Expand(nav, parse_select(select) if select is not None else None, options))
        else:
            result.append(Expand(item))
    return result


def parse_top(text: str) -> int:
    if not text.strip().isdigit():
        raise ODataSyntaxError(f"Invalid value '{text}' for $top query option found. "
                               "The $top query option requires a non-negative integer value.", text, 0)
    return int(text)
