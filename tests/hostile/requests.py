"""Hostile request material and the one check every hostile exchange must pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.hostile.conftest import LiveApp

DATAVERSE = "dataverse/webhook"
FINANCE = "finance/events"
ROUTES = (DATAVERSE, FINANCE)

# Seeded and bounded: the same examples on every run, no example database, no flaky deadlines.
HOSTILE = settings(derandomize=True, database=None, max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What a rejected request may be answered with; anything >= 500 is a bug.
REJECTED = {400, 401, 413, 415, 422}

ODATA_INJECTION = ["') or ('", "'", "%27", "a'b", "x') or true or ('", "/", "a/b", "#", "a#b", "?$top=1",
                   "$batch", "&$filter=true", "..", "../", "..\\x", "(", ")", "%2F", "%00", "', ''"]
PATH_TRICKS = ["../CustomersV3", "CustomersV3/../VendorsV2", "CustCustomerV3Entity/", "/CustomersV3",
               "data/CustomersV3", "CustomersV3%2F..", "msdyn_project/../account", "..", "msdyn_projects/",
               "account\\..\\msdyn_project", "msdyn_project\x00", "msdyn_project#"]
UNICODE = ["\ud800", "\udfff", "\x00", "a\x00b", "\u202e", "\ufeff", "\U0001f600", "\u0130", "ﬀ", "\uffff",
           "\x1b[31m", "\r\n", "Ｃ-1", "é" * 50]

hostile_text = st.one_of(
    st.sampled_from(ODATA_INJECTION + PATH_TRICKS + UNICODE),
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.text(min_size=1000, max_size=1200),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), hostile_text,
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every member path in a decoded JSON document (the root excluded)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def delete(doc: Any, path: tuple[Any, ...]) -> Any:
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return copy


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> bytes:
    """``doc`` with one to three members replaced by hostile values, or deleted, as a body."""
    for _ in range(draw(st.integers(1, 3))):
        found = list(paths(doc))
        if not found:
            break
        path = draw(st.sampled_from(found))
        doc = delete(doc, path) if draw(st.booleans()) and draw(st.booleans()) else replace(doc, path, draw(json_values))
    return json.dumps(doc).encode()


def exchange(app: LiveApp, route: str, body: Any, headers: dict[str, str] | None = None,
             **options: Any) -> httpx.Response:
    """Send one request and check what every answer must be: below 500, JSON, nothing leaked, and a
    publish exactly when it was accepted."""
    before = app.published()
    response = app.post(route, body, {"Content-Type": "application/json", **(headers or {})}, **options)
    after = app.published()
    assert response.status_code < 500, response.text
    text = response.text
    assert "Traceback" not in text and "File \"" not in text
    for secret in app.secrets():
        assert secret not in text
    payload = response.json()
    if response.status_code == 202:
        assert after - before == payload["accepted"], (after, before, payload)
    else:
        assert response.status_code in REJECTED, (response.status_code, text)
        assert after == before, f"a rejected request ({response.status_code}) published {after - before}"
        assert payload["status"] == response.status_code
    return response
