"""The emulators' fast paths give the answers of the code they replaced: orjson-backed JSON equals
the standard library's, the find-based part-head split equals the regex split."""

from __future__ import annotations

import json
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.odata import fastjson
from sandbox.odata.batch import _split_head, parse_batch
from sandbox.odata.keys import Key, parse_key

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(_scalars, st.lists(st.floats(), max_size=2)), max_size=8))
def test_dumps_row_is_json_dumps_byte_for_byte(row: dict[str, object]) -> None:
    assert fastjson.dumps_row(row) == json.dumps(row, separators=(",", ":")).encode()


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _scalars, max_size=8))
def test_loads_reads_what_json_reads(value: dict[str, object]) -> None:
    data = json.dumps(value).encode()
    assert _same(fastjson.loads(data), json.loads(data))


def test_loads_fails_and_accepts_as_json_does() -> None:
    for text in (b'{"a":', b"", b"{'a': 1}", b"[1,]"):
        try:
            json.loads(text)
        except ValueError as expected:
            try:
                fastjson.loads(text)
            except ValueError as got:
                assert type(got) is type(expected) and str(got) == str(expected)
            else:
                raise AssertionError(f"{text!r} was accepted")
    for text in (b'{"a": NaN, "b": -Infinity}', b'{"n": 123456789012345678901234567890}', b'{"a":1,"a":2}',
                 b'{"big": -9223372036854775809}'):
        assert _same(fastjson.loads(text), json.loads(text))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b":", b" "]), max_size=16).map(b"".join))
def test_part_heads_split_where_the_regex_splits(raw: bytes) -> None:
    m = _BLANK_LINE.search(raw)
    assert _split_head(raw) == ((raw[: m.start()], raw[m.end():]) if m else (raw, b""))


def test_parts_with_mixed_line_ends_and_a_request_line_with_colons() -> None:
    body = (b"--b\nContent-Type: application/http\r\nContent-ID: 7\n\r\n"
            b"PATCH http://h:1/api/data/v9.2/accounts(1) HTTP/1.1\nContent-Type: application/json\n\n{\"a\":1}\n--b--\n")
    [part] = parse_batch(body, "multipart/mixed; boundary=b")
    assert (part.method, part.url, part.content_id, part.body) == (  # type: ignore[union-attr]
        "PATCH", "http://h:1/api/data/v9.2/accounts(1)", "7", b'{"a":1}')


def test_a_bare_guid_key_is_parsed_as_the_tokenizer_parsed_it() -> None:
    key = parse_key("0123ABCD-0000-0000-0000-00000000000a")
    assert isinstance(key, Key) and str(key.single) == "0123abcd-0000-0000-0000-00000000000a"
    assert parse_key("accountid=0123abcd-0000-0000-0000-00000000000a").values["accountid"] == key.single
