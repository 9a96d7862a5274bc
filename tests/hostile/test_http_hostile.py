"""Hostile requests to the webhook and business-event functions, over real HTTP through the dev host.

Every exchange goes through :func:`tests.hostile.requests.exchange`: never a 5xx, never a traceback or
secret in the answer, and a publish only from an accepted request (counted on the broker).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.notification import ChangeNotification
from tests.events.samples import business_event, context_body, context_text, event_body, webhook_headers
from tests.hostile.conftest import MAX_BODY_BYTES, LiveApp
from tests.hostile.requests import (
    DATAVERSE,
    FINANCE,
    HOSTILE,
    ODATA_INJECTION,
    PATH_TRICKS,
    ROUTES,
    exchange,
    json_values,
    mutated,
)

VALID = {DATAVERSE: context_body("Update"), FINANCE: event_body("Update")}


@pytest.fixture(autouse=True)
def no_exception_in_the_host_log(live_app: LiveApp) -> Iterator[None]:
    seen = len(live_app.records)
    yield
    bad = [r for r in live_app.exceptions_logged() if r in live_app.records[seen:]]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


def test_the_valid_requests_are_accepted_and_published(live_app):
    # the control case: without it every "nothing published" below could pass vacuously
    for route, body in VALID.items():
        response = exchange(live_app, route, body, webhook_headers() if route == DATAVERSE else {})
        assert response.status_code == 202 and response.json()["accepted"] >= 1, response.text


@HOSTILE
@given(body=mutated(json.loads(context_text("Update"))))
def test_mutated_dataverse_contexts(live_app, body):
    exchange(live_app, DATAVERSE, body, webhook_headers())


@HOSTILE
@given(body=mutated(business_event("Update")))
def test_mutated_business_events(live_app, body):
    exchange(live_app, FINANCE, body)


@HOSTILE
@given(route=st.sampled_from(ROUTES), value=json_values)
def test_any_json_value_as_the_body(live_app, route, value):
    exchange(live_app, route, json.dumps(value).encode())


@HOSTILE
@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=300))
def test_any_bytes_as_the_body(live_app, route, body):
    exchange(live_app, route, body)


@HOSTILE
@given(route=st.sampled_from(ROUTES), text=st.text(st.characters(codec=None), max_size=30))
def test_unicode_with_surrogates_and_nul_in_keys_and_names(live_app, route, text):
    # as JSON escapes (valid JSON, lone surrogates in the decoded text) and as raw bytes (invalid UTF-8)
    if route == DATAVERSE:
        doc = json.loads(context_text("Update"))
        doc["PrimaryEntityName"] = text
        escaped = json.dumps(doc).encode()
    else:
        escaped = json.dumps(business_event("Update", dataAreaId="usmf", CustomerAccount=text)).encode()
    exchange(live_app, route, escaped)
    raw = json.dumps(business_event("Update", dataAreaId="usmf", CustomerAccount=text), ensure_ascii=False)
    exchange(live_app, route, raw.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("route", ROUTES)
def test_a_body_just_over_the_limit_is_413_and_one_at_the_limit_is_read(live_app, route):
    valid = VALID[route]
    at_limit = valid + b" " * (MAX_BODY_BYTES - len(valid))
    assert exchange(live_app, route, at_limit + b" ").status_code == 413
    assert exchange(live_app, route, at_limit).status_code == 202


@pytest.mark.parametrize("route", ROUTES)
def test_a_chunked_body_without_length_is_measured_as_read(live_app, route):
    valid = VALID[route]

    def chunks(total: int) -> Iterator[bytes]:
        yield valid
        padding = total - len(valid)
        while padding > 0:
            yield b" " * min(padding, 4096)
            padding -= 4096

    over = exchange(live_app, route, chunks(MAX_BODY_BYTES + 10))
    assert over.status_code == 413
    assert exchange(live_app, route, chunks(len(valid))).status_code == 202


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("depth", [65, 1000, 10_000])
def test_deep_nesting_is_400(live_app, route, depth):
    assert exchange(live_app, route, b"[" * depth + b"]" * depth).status_code == 400
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    assert exchange(live_app, route, nested).status_code == 400


@pytest.mark.parametrize("value", ODATA_INJECTION)
def test_odata_injection_in_a_key_value_is_carried_as_data(live_app, value):
    # a key value is data: accepted when it is printable text, and published exactly as sent, so the
    # connector (which quotes it) and not the parser decides what it means
    before = len(live_app.bodies())
    response = exchange(live_app, FINANCE, json.dumps(business_event(
        "Update", control=hash(value) % 10**9 + 1, dataAreaId="usmf", CustomerAccount=value)).encode())
    assert response.status_code == 202, response.text
    [note] = [ChangeNotification.from_message(b) for b in live_app.bodies()[before:]]
    assert note.map == "customers" and json.loads(note.key or "") == ["USMF", value]


@pytest.mark.parametrize("name", PATH_TRICKS)
def test_path_tricks_in_entity_and_table_names_are_refused(live_app, name):
    event = business_event("Update")
    event["EntityName"] = name
    assert exchange(live_app, FINANCE, json.dumps(event).encode()).status_code in (400, 422)
    context = json.loads(context_text("Update"))
    context["PrimaryEntityName"] = name
    assert exchange(live_app, DATAVERSE, json.dumps(context).encode(), webhook_headers()).status_code == 400


@pytest.mark.parametrize("headers", [
    {"x-ms-dynamics-entity-name": "account"},  # the header lies about the table: the body decides
    {"x-ms-dynamics-request-name": "Delete"},
    {"x-ms-dynamics-msg-size-exceeded": "true"},
    {"x-ms-dynamics-organization": "evil.example.com"},
    {"x-ms-correlation-request-id": "x" * 5000},
    {"x-ms-correlation-request-id": "a\tb"},
])
def test_spoofed_dynamics_headers_change_no_routing(live_app, headers):
    before = len(live_app.bodies())
    response = exchange(live_app, DATAVERSE, context_body("Update", version=before + 1),
                        {**webhook_headers(), **headers})
    if response.status_code == 202:
        [note] = [ChangeNotification.from_message(b) for b in live_app.bodies()[before:]]
        assert note.map == "projects" and note.operation.value == "update"
    else:
        assert response.status_code == 400  # a correlation id that is not a short printable text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("content_type", "status"), [
    ("text/plain", 415), ("application/xml", 415), ("application/json; charset=utf-16", 415),
    ("application/x-www-form-urlencoded", 415), ("multipart/form-data; boundary=x", 415),
    ("application/json, text/plain", 415),  # two Content-Type headers, joined as the host does
    ("APPLICATION/JSON; charset=\"UTF-8\"", 202), ("application/cloudevents+json", 202),
])
def test_content_type_lies(live_app, route, content_type, status):
    body = context_body("Update", version=abs(hash((route, content_type))) % 10**9) if route == DATAVERSE \
        else event_body("Update", control=abs(hash((route, content_type))) % 10**9 + 1)
    assert exchange(live_app, route, body, {"Content-Type": content_type}).status_code == status


@pytest.mark.parametrize("route", ROUTES)
def test_a_json_content_type_on_a_body_that_is_not_json(live_app, route):
    assert exchange(live_app, route, b"<xml>not json</xml>").status_code == 400
    assert exchange(live_app, route, b"").status_code == 400


@pytest.mark.parametrize("route", ROUTES)
def test_duplicated_headers(live_app, route):
    # httpx sends a list of pairs as repeated headers; the host joins repeats with ", "
    body = VALID[route]
    before = live_app.published()
    twice_secret = live_app.client.post(f"/api/{route}", content=body, headers=[
        ("x-functions-key", live_app.function_key), ("Content-Type", "application/json"),
        ("x-dualsync-key", live_app.secret), ("x-dualsync-key", live_app.secret)])
    twice_type = live_app.client.post(f"/api/{route}", content=body, headers=[
        ("x-functions-key", live_app.function_key), ("x-dualsync-key", live_app.secret),
        ("Content-Type", "application/json"), ("Content-Type", "application/json")])
    assert (twice_secret.status_code, twice_type.status_code) == (401, 415)
    assert live_app.published() == before
