"""OData URL literals and the tokenizer shared by ``$filter`` and key segments.

Literal forms understood (OData 4.0 URL conventions, as Dataverse and Finance accept them):
``'text'`` (a quote doubled inside: ``'O''Neil'``), ``null``, ``true``/``false``, integers,
decimals (``1.5``, ``-2``, ``1e3``, optional ``M``/``L``/``D``/``F`` suffix), bare GUIDs
(``00000000-0000-0000-0000-000000000001``), dates (``2024-01-31``), date-times
(``2024-01-31T10:00:00Z``) and Finance enum literals (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class ODataSyntaxError(ValueError):
    """A ``$filter``, key segment or literal that cannot be parsed; ``position`` is 0-based."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.position = position


@dataclass(frozen=True, slots=True)
class EnumLiteral:
    """``Namespace.Type'Member'``: Finance enums (Dataverse uses plain integers for option sets)."""

    type_name: str
    member: str


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "str" | "num" | "guid" | "datetime" | "date" | "enum" | "ident" | "(" | ")" | "," | "="
    text: str
    pos: int
    value: Any = None


_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<enum>[A-Za-z_][\w.]*'(?:[^']|'')*')
  | (?P<guid>""" + _GUID + r""")(?![\w-])
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)(?![\w:])
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:-])
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMlLdDfF]?)(?![\w.])
  | (?P<ident>[A-Za-z_$@][\w.$@]*(?:/[A-Za-z_$@][\w.$@]*)*)
  | (?P<punct>[(),=])
    """,
    re.VERBOSE,
)


def parse_string(raw: str) -> str:
    return raw[1:-1].replace("''", "'")


def parse_datetime(text: str) -> datetime:
    """ISO date-time -> aware UTC datetime (a missing zone is taken as UTC, as Dataverse does)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ODataSyntaxError(f"The DateTimeOffset text '{text}' should be in format "
                               "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range.",
                               text) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_number(text: str) -> int | Decimal:
    body = text[:-1] if text[-1] in "mMlLdDfF" else text
    if re.fullmatch(r"-?\d+", body):
        return int(body)
    try:
        return Decimal(body)
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets numbers through
        raise ODataSyntaxError(f"'{text}' is not a valid number", text) from exc


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ODataSyntaxError(
                f"Syntax error: character '{text[pos]}' is not valid at position {pos} in '{text}'.", text, pos)
        kind = m.lastgroup or ""
        raw = m.group()
        if kind != "ws":
            tokens.append(_make_token(kind, raw, pos, text))
        pos = m.end()
    return tokens


def _make_token(kind: str, raw: str, pos: int, text: str) -> Token:
    if kind == "str":
        return Token("str", raw, pos, parse_string(raw))
    if kind == "enum":
        quote = raw.index("'")
        return Token("enum", raw, pos, EnumLiteral(raw[:quote], parse_string(raw[quote:])))
    if kind == "guid":
        return Token("guid", raw, pos, uuid.UUID(raw))
    if kind == "datetime":
        try:
            return Token("datetime", raw, pos, parse_datetime(raw))
        except ODataSyntaxError as exc:
            raise ODataSyntaxError(str(exc), text, pos) from None
    if kind == "date":
        try:
            return Token("date", raw, pos, date.fromisoformat(raw))
        except ValueError:
            raise ODataSyntaxError(f"The Date text '{raw}' is not valid.", text, pos) from None
    if kind == "num":
        return Token("num", raw, pos, parse_number(raw))
    if kind == "punct":
        return Token(raw, raw, pos)
    return Token("ident", raw, pos)


_KEYWORD_VALUES: dict[str, Any] = {"null": None, "true": True, "false": False}
LITERAL_KINDS = frozenset({"str", "num", "guid", "datetime", "date", "enum"})


def token_literal(token: Token) -> tuple[bool, Any]:
    """(is_literal, value) for a token; ``null``/``true``/``false`` identifiers count as literals."""
    if token.kind in LITERAL_KINDS:
        return True, token.value
    if token.kind == "ident" and token.text in _KEYWORD_VALUES:
        return True, _KEYWORD_VALUES[token.text]
    return False, None


def parse_literal(text: str) -> Any:
    """One literal, e.g. ``'abc'`` -> ``"abc"``, ``5`` -> ``5``, a GUID -> ``uuid.UUID``."""
    tokens = tokenize(text)
    if len(tokens) != 1:
        raise ODataSyntaxError(f"'{text}' is not a single literal.", text, 0)
    ok, value = token_literal(tokens[0])
    if not ok:
        raise ODataSyntaxError(f"'{text}' is not a literal.", text, 0)
    return value


def format_literal(value: Any) -> str:
    """The URL form of a Python value (inverse of :func:`parse_literal`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, EnumLiteral):
        return f"{value.type_name}'{value.member}'"
    return str(value)
