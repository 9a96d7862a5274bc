"""The connectors' JSON codec: the standard library's values, faster, and its answer where they differ."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.connectors import jsoncodec

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) \
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(documents)
def test_what_it_writes_reads_back_as_the_standard_library_reads_it(value) -> None:
    written = jsoncodec.dumps(value)
    assert json.loads(written) == json.loads(json.dumps(value, ensure_ascii=False))
    assert jsoncodec.loads(written) == json.loads(written)


def test_wide_integers_read_and_written_exactly() -> None:
    text = '{"RecId":123456789012345678901234567890,"n":-18446744073709551617}'
    assert jsoncodec.loads(text.encode()) == json.loads(text)
    assert jsoncodec.dumps({"RecId": 2**100}) == b'{"RecId":1267650600228229401496703205376}'


def test_non_finite_floats_are_written_as_json_writes_them_not_as_null() -> None:
    # the service refuses NaN (a validation error), where a null would silently clear the column
    assert jsoncodec.dumps({"Amount": math.nan, "Note": None}) == b'{"Amount":NaN,"Note":null}'
    assert jsoncodec.dumps({"lines": [{"Qty": math.inf}]}) == b'{"lines":[{"Qty":Infinity}]}'
    assert jsoncodec.dumps({"Note": None}) == b'{"Note":null}'


def test_unicode_is_written_as_utf8() -> None:
    assert jsoncodec.dumps({"name": "Zoë – 東京"}) == '{"name":"Zoë – 東京"}'.encode()


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a":', b"\xff\xfe"])
def test_a_body_that_is_not_json_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        jsoncodec.loads(body)
