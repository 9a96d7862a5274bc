"""The ingress-queue handler with a real local broker (change topic) and a real SQLite state store.

The topic has duplicate detection off, so anything published twice would show up twice; its one
subscription is session-enabled, as the per-map subscriptions are.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.events.ingress import Ingress, IngressKind, handle_ingress, record_ingress_dead_letter
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.state.sqlite import SqliteStateStore
from shared.transport.local import LocalBroker, LocalBrokerTransport
from shared.transport.messages import subscription_path
from tests.events.samples import (
    PROJECT_ID,
    business_event,
    catalog,
    compiled,
    context_body,
    data_event_body,
    servicebus_properties,
    stripped_body,
)

TOPIC = "changes"
QUEUES = {IngressKind.DATAVERSE: "dv-ingress", IngressKind.FINANCE: "fo-ingress"}
JSON = "application/json"


@pytest.fixture
async def env(tmp_path):
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_topic(TOPIC, duplicate_detection_window=None)
    await broker.create_subscription(TOPIC, "all", requires_session=True)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    yield Ingress(catalog(), compiled(), LocalBrokerTransport(broker), state, TOPIC, QUEUES, 1 << 20)
    await state.close()
    await broker.close()


async def published(env: Ingress) -> list:
    return await env.transport.broker.peek(subscription_path(TOPIC, "all"), 100)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("message", "operation"), [
    ("Create", Operation.CREATE), ("Update", Operation.UPDATE), ("Delete", Operation.DELETE),
])
async def test_dataverse_contexts_from_the_queue_are_published_with_session_ids(env, message, operation) -> None:
    outcome = await handle_ingress(IngressKind.DATAVERSE, context_body(message),
                                   servicebus_properties(message=message), env, content_type=JSON, message_id="sb-1")
    assert (outcome.sent, outcome.error) == (1, None)
    [msg] = await published(env)
    note = ChangeNotification.from_message(msg.body)
    assert (note.map, str(note.record_id), note.operation) == ("projects", PROJECT_ID, operation)
    assert note.origin is Origin.SERVICEBUS_ENDPOINT
    assert (msg.message_id, msg.session_id) == (note.message_id, note.session_id)
    assert msg.session_id == f"projects:dataverse:{PROJECT_ID}"


async def test_a_message_without_content_type_is_accepted(env) -> None:
    outcome = await handle_ingress(IngressKind.DATAVERSE, context_body("Update"), servicebus_properties(), env)
    assert outcome.sent == 1


async def test_the_stripped_context_routes_by_primary_id(env) -> None:
    outcome = await handle_ingress(IngressKind.DATAVERSE, stripped_body("Update"),
                                   servicebus_properties(MessageMaxSizeExceeded=True), env, content_type=JSON)
    assert outcome.sent == 1
    [msg] = await published(env)
    note = ChangeNotification.from_message(msg.body)
    assert (str(note.record_id), note.version, note.operation) == (PROJECT_ID, None, Operation.UPDATE)


async def test_a_malformed_body_is_kept_as_an_error_and_nothing_is_published(env) -> None:
    props = servicebus_properties(Authorization="Bearer eyJhbGciOi.secret-token")
    body = b'{"MessageName": "Update", "password": "hunter2", '
    outcome = await handle_ingress(IngressKind.DATAVERSE, body, props, env, content_type=JSON, message_id="sb-bad")
    assert outcome.sent == 0 and outcome.error is not None
    assert await published(env) == []
    [record] = await env.state.list_errors()
    assert (record.map, record.key, record.classification) == ("dv-ingress", "sb-bad", "bad-message")
    assert record.reason.startswith("the body is not JSON")
    assert record.payload["body"] == body.decode()  # kept as text: it does not parse
    assert "secret-token" not in json.dumps(record.payload)
    assert record.payload["properties"]["http://schemas.microsoft.com/xrm/2011/claims/entitylogicalname"] == \
        "msdyn_project"
    # Service Bus redelivering the same message adds an occurrence instead of a second record
    await handle_ingress(IngressKind.DATAVERSE, body, props, env, content_type=JSON, message_id="sb-bad",
                         delivery_count=2)
    [again] = await env.state.list_errors()
    assert (again.id, again.occurrences, again.delivery_count) == (record.id, 2, 2)


@pytest.mark.parametrize(("body", "content_type", "classification", "reason"), [
    (context_body("Update").replace(b'"msdyn_project"', b'"msdyn_unknowntable"'), JSON, "mapping",
     "no map covers the Dataverse table 'msdyn_unknowntable'"),
    (context_body("Associate"), JSON, "mapping", "MessageName 'Associate' is not handled"),
    (context_body("Update").replace(PROJECT_ID.encode(), b"not-a-guid"), JSON, "validation",
     "PrimaryEntityId must be a GUID"),
    (context_body("Update"), "application/msbin1", "bad-message", "is not JSON"),
])
async def test_rejections_are_classified_and_kept(env, body, content_type, classification, reason) -> None:
    outcome = await handle_ingress(IngressKind.DATAVERSE, body, servicebus_properties(), env,
                                   content_type=content_type, message_id="m-1")
    assert outcome.error is not None and outcome.error.classification == classification
    assert reason in outcome.error.reason
    assert await published(env) == []


async def test_a_finance_business_event_from_the_queue_passes_once(env) -> None:
    body = json.dumps(business_event(control=500)).encode()
    first = await handle_ingress(IngressKind.FINANCE, body, {"BusinessEventId": "x"}, env, content_type=JSON)
    assert first.sent == 1
    duplicate = await handle_ingress(IngressKind.FINANCE, body, {}, env)
    older = await handle_ingress(IngressKind.FINANCE, json.dumps(business_event(control=499)).encode(), {}, env)
    assert duplicate.sent == older.sent == 0
    assert duplicate.ignored_reason.startswith("stale control number 500 (duplicate")
    assert older.ignored_reason.startswith("stale control number 499 (older; 500")
    newer = await handle_ingress(IngressKind.FINANCE, json.dumps(business_event(control=777)).encode(), {}, env)
    assert newer.sent == 1
    versions = [ChangeNotification.from_message(m.body).version for m in await published(env)]
    assert versions == [500, 777]


async def test_concurrent_duplicate_events_on_the_queue_publish_once(env) -> None:
    body = json.dumps(business_event(control=900)).encode()
    outcomes = await asyncio.gather(*(handle_ingress(IngressKind.FINANCE, body, {}, env) for _ in range(8)))
    assert sorted(o.sent for o in outcomes) == [0] * 7 + [1]
    assert len(await published(env)) == 1


async def test_a_finance_data_event_from_the_queue_is_published(env) -> None:
    outcome = await handle_ingress(IngressKind.FINANCE, data_event_body("Create"), {}, env, content_type=JSON)
    assert outcome.sent == 1
    [msg] = await published(env)
    note = ChangeNotification.from_message(msg.body)
    assert (note.map, note.operation, note.origin) == ("customers", Operation.CREATE, Origin.SERVICEBUS_ENDPOINT)
    assert msg.session_id == note.session_id


async def test_an_unknown_finance_entity_is_kept_under_the_finance_queue(env) -> None:
    body = json.dumps(business_event(entity="NoSuchEntity")).encode()
    outcome = await handle_ingress(IngressKind.FINANCE, body, {}, env, message_id="fo-1")
    assert outcome.error is not None
    assert (outcome.error.map, outcome.error.classification) == ("fo-ingress", "mapping")
    assert outcome.error.payload["body"]["EntityName"] == "NoSuchEntity"  # parsed JSON kept
    assert await published(env) == []


async def test_a_dead_lettered_ingress_message_is_kept(env) -> None:
    record = await record_ingress_dead_letter(
        IngressKind.DATAVERSE, context_body("Update"), {"DeadLetterReason": "MaxDeliveryCountExceeded"}, env,
        reason="MaxDeliveryCountExceeded", description="Message could not be consumed after 10 delivery attempts.",
        message_id="sb-9", delivery_count=10)
    assert (record.map, record.classification, record.delivery_count) == ("dv-ingress", "max-deliveries", 10)
    assert record.payload["body"]["PrimaryEntityName"] == "msdyn_project"
    assert "deadletterreason" not in record.payload["properties"]
