"""The ingress-queue functions called directly with constructed Service Bus messages.

The state store is real (SQLite in tmp_path); Service Bus is replaced with pytest-mock, asserting the
exact publish calls (topic, message ids, session ids, application properties).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import azure.functions as func
import azure.functions.servicebus as azf_sb
import pytest

import functions.ingress as ingress
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.runtime import get_runtime
from shared.state.sqlite import SqliteStateStore
from shared.transport.base import Transport
from tests.events.samples import (
    OPERATION_ID,
    PROJECT_ID,
    business_event,
    context_body,
    servicebus_properties,
    stripped_body,
)

SETTINGS = get_runtime().settings


@pytest.fixture
async def service(tmp_path, mocker):
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()

    class Service:
        transport = mocker.AsyncMock(spec=Transport)

    Service.state = state  # type: ignore[attr-defined]

    async def get_service():
        return Service

    mocker.patch.object(ingress, "get_service", get_service)
    yield Service
    await state.close()


def sb_message(body: bytes, properties: dict[str, object], *, message_id: str = "sb-1",
               content_type: str | None = "application/json", delivery_count: int = 1,
               **extra: object) -> func.ServiceBusMessage:
    return azf_sb.ServiceBusMessage(body=body, message_id=message_id, content_type=content_type,
                                  application_properties=dict(properties), user_properties=dict(properties),
                                  delivery_count=delivery_count,
                                  enqueued_time_utc=datetime(2024, 5, 1, 12, tzinfo=UTC), **extra)


async def call(fn, msg: func.ServiceBusMessage) -> None:
    await fn.build().get_user_function()(msg)


def published(service) -> list:
    out = []
    for c in service.transport.publish.await_args_list:
        topic, messages = c.args
        assert topic == SETTINGS.change_topic
        out.extend(messages)
    return out


@pytest.mark.parametrize(("message", "operation"), [
    ("Create", Operation.CREATE), ("Update", Operation.UPDATE), ("Delete", Operation.DELETE),
])
async def test_dataverse_ingress_publishes_the_notification_with_ids(service, message, operation) -> None:
    await call(ingress.dataverse_ingress, sb_message(context_body(message), servicebus_properties(message=message)))
    [out] = published(service)
    note = ChangeNotification.from_message(out.body)
    assert (note.map, str(note.record_id), note.operation, note.origin) == (
        "projects", PROJECT_ID, operation, Origin.SERVICEBUS_ENDPOINT)
    assert out.session_id == f"projects:dataverse:{PROJECT_ID}"
    # a Delete's context has no row version: the operation id tells the change apart
    change = "v5637611083" if operation is not Operation.DELETE else f"c{OPERATION_ID}"
    assert out.message_id == f"projects:dataverse:{PROJECT_ID}:{change}"
    assert out.application_properties == {"map": "projects", "source": "dataverse", "operation": operation.value}


async def test_dataverse_ingress_routes_the_stripped_context(service) -> None:
    props = servicebus_properties(MessageMaxSizeExceeded=True)
    await call(ingress.dataverse_ingress, sb_message(stripped_body("Update"), props))
    [out] = published(service)
    note = ChangeNotification.from_message(out.body)
    assert (str(note.record_id), note.version) == (PROJECT_ID, None)
    assert out.session_id == f"projects:dataverse:{PROJECT_ID}"
    assert out.message_id == f"projects:dataverse:{PROJECT_ID}:c{note.change_id}"


async def test_a_malformed_message_is_kept_as_an_error_and_completed(service) -> None:
    await call(ingress.dataverse_ingress, sb_message(b"{not json", servicebus_properties(), message_id="bad-1"))
    service.transport.publish.assert_not_called()
    [record] = await service.state.list_errors()
    assert (record.map, record.key, record.classification) == (SETTINGS.ingress_queue_dataverse, "bad-1", "bad-message")
    assert record.payload["body"] == "{not json"


async def test_finance_ingress_publishes_once_per_control_number(service) -> None:
    body = json.dumps(business_event(control=41)).encode()
    await call(ingress.finance_ingress, sb_message(body, {"BusinessEventId": "CustCustomerV3UpdatedBusinessEvent"}))
    await call(ingress.finance_ingress, sb_message(body, {}, message_id="sb-2"))  # the same event again
    await call(ingress.finance_ingress, sb_message(json.dumps(business_event(control=40)).encode(), {},
                                                   message_id="sb-3"))  # an older one, late
    [out] = published(service)
    assert out.session_id == 'customers:finance:["USMF","C-1"]'
    assert out.message_id == 'customers:finance:["USMF","C-1"]:v41'
    assert await service.state.list_errors() == []


async def test_concurrent_duplicate_finance_messages_publish_once(service) -> None:
    body = json.dumps(business_event(control=77)).encode()
    await asyncio.gather(*(call(ingress.finance_ingress, sb_message(body, {}, message_id=f"sb-{i}"))
                           for i in range(6)))
    assert len(published(service)) == 1


async def test_a_crash_propagates_so_service_bus_redelivers(service) -> None:
    service.transport.publish.side_effect = ConnectionError("namespace unreachable")
    body = json.dumps(business_event(control=5)).encode()
    with pytest.raises(ConnectionError):
        await call(ingress.finance_ingress, sb_message(body, {}))
    service.transport.publish.side_effect = None
    await call(ingress.finance_ingress, sb_message(body, {}, delivery_count=2))  # the redelivery passes
    failed, sent = published(service)
    assert failed.message_id == sent.message_id == 'customers:finance:["USMF","C-1"]:v5'
    await call(ingress.finance_ingress, sb_message(body, {}, delivery_count=3))  # now it is a duplicate
    assert service.transport.publish.await_count == 2


async def test_ingress_dead_letters_are_kept(service) -> None:
    props = {"DeadLetterReason": "MaxDeliveryCountExceeded", "DeadLetterErrorDescription": "10 attempts"}
    await call(ingress.finance_ingress_deadletter,
               sb_message(json.dumps(business_event()).encode(), props, message_id="dl-1", delivery_count=10))
    [record] = await service.state.list_errors()
    assert (record.map, record.classification, record.reason, record.description) == (
        SETTINGS.ingress_queue_finance, "max-deliveries", "MaxDeliveryCountExceeded", "10 attempts")


def _trigger(fn) -> dict:
    return next(b for b in json.loads(fn.get_function_json())["bindings"] if b["direction"] == "IN")


def test_ingress_functions_bind_their_queues_without_sessions(app_functions) -> None:
    expected = {
        "dataverse_ingress": "%DUALSYNC_INGRESS_QUEUE_DATAVERSE%",
        "finance_ingress": "%DUALSYNC_INGRESS_QUEUE_FINANCE%",
        "dataverse_ingress_deadletter": "%DUALSYNC_INGRESS_QUEUE_DATAVERSE%/$DeadLetterQueue",
        "finance_ingress_deadletter": "%DUALSYNC_INGRESS_QUEUE_FINANCE%/$DeadLetterQueue",
    }
    for name, queue in expected.items():
        t = _trigger(app_functions[name])
        assert (t["type"], t["queueName"], t["connection"]) == ("serviceBusTrigger", queue, "ServiceBusConnection")
        assert not t.get("isSessionsEnabled")
