"""The Finance business-event HTTP function with ControlNumber tracking.

The state store is real (SQLite in tmp_path); Service Bus is replaced with pytest-mock. A stale or
duplicate event is answered 202 with the reason and publishes nothing, over HTTP and the queue alike.
"""

from __future__ import annotations

import asyncio
import json

import azure.functions as func
import azure.functions.servicebus as azf_sb
import pytest

import functions.ingress as ingress
import functions.webhooks as webhooks
from shared.events.notification import ChangeNotification
from shared.state.errors import ConcurrencyError
from shared.state.sqlite import SqliteStateStore
from shared.transport.base import Transport
from tests.events.samples import business_event, data_event_body

HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
async def service(tmp_path, mocker):
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()

    class Service:
        transport = mocker.AsyncMock(spec=Transport)

    Service.state = state  # type: ignore[attr-defined]

    async def get_service():
        return Service

    mocker.patch.object(webhooks, "get_service", get_service)
    mocker.patch.object(ingress, "get_service", get_service)
    yield Service
    await state.close()


async def post(body: bytes) -> tuple[int, dict]:
    req = func.HttpRequest("POST", "/api/finance/events", headers=HEADERS, body=body)
    resp = await webhooks.finance_events.build().get_user_function()(req)
    return resp.status_code, json.loads(resp.get_body())


def event(control: int, **kw) -> bytes:
    return json.dumps(business_event(control=control, **kw)).encode()


async def test_an_event_is_published_once_and_stale_ones_are_answered_202(service) -> None:
    assert await post(event(300)) == (202, {"accepted": 1, "ignored": None})
    status, body = await post(event(300))
    assert (status, body["accepted"]) == (202, 0)
    assert body["ignored"].startswith("stale control number 300 (duplicate; 300 already passed for "
                                      'CustCustomerV3Entity ["USMF","C-1"] in USMF')
    status, body = await post(event(299, operation="Create"))
    assert (status, body["accepted"]) == (202, 0) and body["ignored"].startswith("stale control number 299 (older")
    assert await post(event(301, operation="Delete")) == (202, {"accepted": 1, "ignored": None})
    versions = [ChangeNotification.from_message(c.args[1][0].body).version
                for c in service.transport.publish.await_args_list]
    assert versions == [300, 301]


async def test_concurrent_duplicate_requests_publish_once(service) -> None:
    answers = await asyncio.gather(*(post(event(64)) for _ in range(8)))
    assert all(status == 202 for status, _ in answers)
    assert sorted(body["accepted"] for _, body in answers) == [0] * 7 + [1]
    assert service.transport.publish.await_count == 1


async def test_http_and_queue_share_the_tracking(service) -> None:
    assert (await post(event(10)))[1]["accepted"] == 1
    msg = azf_sb.ServiceBusMessage(body=event(10), message_id="sb-1", content_type="application/json",
                                   application_properties={}, user_properties={})
    await ingress.finance_ingress.build().get_user_function()(msg)
    assert service.transport.publish.await_count == 1


async def test_a_data_event_is_accepted_over_http(service) -> None:
    status, body = await post(data_event_body("Update"))
    assert (status, body["accepted"]) == (202, 1)
    [message] = service.transport.publish.await_args.args[1]
    assert message.session_id == 'customers:finance:["USMF","C-1"]'


async def test_a_rejected_event_publishes_nothing_and_tracks_nothing(service) -> None:
    status, body = await post(event(1, entity="NoSuchEntity"))
    assert (status, body["error"]) == (422, "unknown_entity")
    service.transport.publish.assert_not_called()
    assert (await post(event(1)))[1]["accepted"] == 1


async def test_a_checkpoint_that_keeps_changing_answers_503_so_finance_retries(service, mocker) -> None:
    mocker.patch.object(service.state, "put_checkpoint", side_effect=ConcurrencyError("checkpoint", "x"))
    status, body = await post(event(2))
    assert (status, body["status"]) == (503, 503)
    service.transport.publish.assert_not_called()
