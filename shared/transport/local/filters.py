"""Subscription filters of the local broker.

A filter is a Python predicate over application properties, or the subset of Service Bus SQL filter
syntax that routing by map needs: ``name = literal`` comparisons joined by ``AND``, parentheses,
``1=1`` / ``1=0``. Names are application properties (optionally ``user.name`` or ``[odd-name]``) or
``sys.MessageId`` / ``sys.SessionId`` / ``sys.Label`` / ``sys.Subject`` / ``sys.CorrelationId`` /
``sys.ContentType``. Literals: ``'text'`` (``''`` escapes a quote), integers, decimals, TRUE, FALSE.
A missing property never equals anything, as in Service Bus.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import FilterSyntaxError
from ..messages import PropertyValue

Predicate = Callable[[Mapping[str, PropertyValue]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>=|\(|\))"
    r"|(?P<name>\[[^\]]+\]|[A-Za-z_][\w.]*))"
)
_SYS = {
    "messageid": "message_id",
    "sessionid": "session_id",
    "label": "subject",
    "subject": "subject",
    "correlationid": "correlation_id",
    "contenttype": "content_type",
}


@dataclass(frozen=True, slots=True)
class _Ref:
    system: bool
    name: str


@dataclass(frozen=True, slots=True)
class _Lit:
    value: PropertyValue


_Operand = _Ref | _Lit


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterSyntaxError(f"cannot read filter {text!r} at position {pos}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class SqlFilter:
    """A parsed SQL filter; call it with application and system properties."""

    def __init__(self, text: str):
        self.text = text
        self._tokens = _tokens(text)
        self._pos = 0
        # Disjunctive forms are out of scope: the tree is a conjunction of comparisons.
        self._clauses: list[tuple[_Operand, _Operand]] = []
        if not self._tokens:
            raise FilterSyntaxError("empty filter")
        self._expr()
        if self._pos != len(self._tokens):
            raise FilterSyntaxError(f"unexpected {self._tokens[self._pos][1]!r} in filter {text!r}")

    # --- recursive descent --------------------------------------------------------------------------
    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise FilterSyntaxError(f"filter {self.text!r} ends too early")
        self._pos += 1
        return tok

    def _expr(self) -> None:
        self._term()
        while (tok := self._peek()) is not None and tok[0] == "name" and tok[1].upper() == "AND":
            self._pos += 1
            self._term()

    def _term(self) -> None:
        if self._peek() == ("op", "("):
            self._pos += 1
            self._expr()
            if self._take() != ("op", ")"):
                raise FilterSyntaxError(f"missing ')' in filter {self.text!r}")
            return
        left = self._operand()
        if self._take() != ("op", "="):
            raise FilterSyntaxError(f"only '=' comparisons joined by AND are supported: {self.text!r}")
        self._clauses.append((left, self._operand()))

    def _operand(self) -> _Operand:
        kind, text = self._take()
        if kind == "str":
            return _Lit(text[1:-1].replace("''", "'"))
        if kind == "num":
            return _Lit(float(text) if "." in text else int(text))
        if kind == "name":
            upper = text.upper()
            if upper in ("TRUE", "FALSE"):
                return _Lit(upper == "TRUE")
            if upper in ("AND", "OR", "NOT", "NULL", "IN", "LIKE", "IS"):
                raise FilterSyntaxError(f"{text} is not supported in filter {self.text!r}")
            if text.startswith("["):
                return _Ref(False, text[1:-1])
            prefix, _, rest = text.partition(".")
            if rest and prefix.lower() == "sys":
                if rest.lower() not in _SYS:
                    raise FilterSyntaxError(f"unknown system property sys.{rest} in filter {self.text!r}")
                return _Ref(True, _SYS[rest.lower()])
            if rest and prefix.lower() == "user":
                return _Ref(False, rest)
            return _Ref(False, text)
        raise FilterSyntaxError(f"unexpected {text!r} in filter {self.text!r}")

    # --- evaluation ---------------------------------------------------------------------------------
    def __call__(
        self, properties: Mapping[str, PropertyValue], system: Mapping[str, PropertyValue] | None = None
    ) -> bool:
        missing = object()

        def value(op: _Operand) -> object:
            if isinstance(op, _Lit):
                return op.value
            source = (system or {}) if op.system else properties
            v = source.get(op.name, missing)
            return missing if v is None else v

        for left, right in self._clauses:
            lv, rv = value(left), value(right)
            if lv is missing or rv is missing or isinstance(lv, bool) != isinstance(rv, bool) or lv != rv:
                return False
        return True

    def __repr__(self) -> str:
        return f"SqlFilter({self.text!r})"
