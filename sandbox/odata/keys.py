"""Key segments: ``accounts(<guid>)``, ``accounts(accountnumber='A1')``,
``msdyn_actuals(msdyn_name='X',_msdyn_company_value=<guid>)``, ``CustomersV3(dataAreaId='usmf',CustomerAccount='C1')``.

A key is either a single unnamed literal (``Key(values={}, single=<value>)``) or named parts
(``Key(values={"name": value, ...})``). Names keep their spelling; matching them against a table's
keys is the emulator's job.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sandbox.odata.literals import ODataSyntaxError, Token, token_literal, tokenize

_NO_VALUE = object()


@dataclass(frozen=True)
class Key:
    values: dict[str, Any] = field(default_factory=dict)
    single: Any = _NO_VALUE

    @property
    def is_single(self) -> bool:
        return self.single is not _NO_VALUE


@dataclass(frozen=True)
class EntityRef:
    """``/<entity set>(<key>)`` as found in ``@odata.bind``, ``@odata.id`` or a request path."""

    entity_set: str
    key: Key


_SEGMENT_RE = re.compile(r"^(?P<name>[^()]+)\((?P<key>.*)\)$", re.DOTALL)


def split_segment(segment: str) -> tuple[str, str | None]:
    """``"accounts(…)"`` -> ``("accounts", "…")``; ``"accounts"`` -> ``("accounts", None)``."""
    m = _SEGMENT_RE.match(segment)
    if m is None:
        if "(" in segment or ")" in segment:
            raise ODataSyntaxError(f"Bad Request - Error in query syntax: '{segment}'.", segment, 0)
        return segment, None
    return m.group("name"), m.group("key")


_BARE_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_key(text: str) -> Key:
    """Parse what is between the parentheses of a key segment."""
    if len(text) == 36 and _BARE_GUID.fullmatch(text):  # the commonest key: one GUID, no tokenizer needed
        return Key(single=uuid.UUID(text))
    tokens = tokenize(text)
    if not tokens:
        raise ODataSyntaxError("The key is empty.", text, 0)
    if len(tokens) == 1:
        ok, value = token_literal(tokens[0])
        if not ok:
            raise ODataSyntaxError(f"'{text}' is not a valid key value.", text, 0)
        return Key(single=value)
    values: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        name_tok, eq_tok = _at(tokens, i, text), _at(tokens, i + 1, text)
        if name_tok.kind != "ident" or eq_tok.kind != "=":
            raise ODataSyntaxError(f"'{text}' is not a valid key: expected name=value at position {name_tok.pos}.",
                                   text, name_tok.pos)
        ok, value = token_literal(_at(tokens, i + 2, text))
        if not ok:
            raise ODataSyntaxError(f"'{text}' is not a valid key: '{name_tok.text}' has no literal value.",
                                   text, name_tok.pos)
        if name_tok.text in values:
            raise ODataSyntaxError(f"'{text}' names key property '{name_tok.text}' twice.", text, name_tok.pos)
        values[name_tok.text] = value
        i += 3
        if i < len(tokens):
            if tokens[i].kind != ",":
                raise ODataSyntaxError(f"'{text}' is not a valid key: expected ',' at position {tokens[i].pos}.",
                                       text, tokens[i].pos)
            i += 1
            if i == len(tokens):
                raise ODataSyntaxError(f"'{text}' ends with ','.", text, len(text))
    return Key(values=values)


def _at(tokens: list[Token], i: int, text: str) -> Token:
    if i >= len(tokens):
        raise ODataSyntaxError(f"'{text}' is not a valid key: it ends early.", text, len(text))
    return tokens[i]


def parse_segment(segment: str) -> tuple[str, Key | None]:
    """``"accounts(accountnumber='A')"`` -> ``("accounts", Key(values={"accountnumber": "A"}))``."""
    name, key_text = split_segment(segment)
    return name, (parse_key(key_text) if key_text is not None else None)


def parse_entity_ref(ref: str, service_root_path: str | None = None) -> EntityRef:
    """Parse an entity reference: ``/accounts(<guid>)``, ``accounts(k='v')``, or an absolute URL.

    ``service_root_path`` (e.g. ``/api/data/v9.2``) is stripped when present in the path.
    """
    path = unquote(urlsplit(ref).path) if "://" in ref else ref
    if service_root_path and path.startswith(service_root_path):
        path = path[len(service_root_path):]
    path = path.lstrip("/")
    name, key = parse_segment(path)
    if key is None or "/" in name:
        raise ODataSyntaxError(f"'{ref}' is not an entity reference of the form /<entity set>(<key>).", ref, 0)
    return EntityRef(name, key)
