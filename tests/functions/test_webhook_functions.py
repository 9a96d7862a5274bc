"""The webhook and business-event HTTP functions, called with constructed requests.

Service Bus is replaced with pytest-mock; the exact published messages are asserted, and a rejected
request publishes nothing.
"""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from pydantic import SecretStr

import functions.webhooks as webhooks
from shared.events.notification import ChangeNotification
from shared.runtime import get_runtime
from shared.transport.base import Transport
from tests.events.samples import PROJECT_ID, context_body, webhook_headers


@pytest.fixture
def transport(mocker):
    transport = mocker.AsyncMock(spec=Transport)

    class Service:
        pass

    service = Service()
    service.transport = transport  # type: ignore[attr-defined]

    async def get_service():
        return service

    mocker.patch.object(webhooks, "get_service", get_service)
    return transport


def request(body: bytes, headers: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest("POST", "/api/dataverse/webhook", headers=headers, body=body)


async def test_accepted_webhook_publishes_one_notification_per_map_and_answers_202(transport):
    resp = await webhooks.dataverse_webhook.build().get_user_function()(
        request(context_body("Update"), webhook_headers("Update")))
    assert resp.status_code == 202, resp.get_body()
    assert json.loads(resp.get_body())["accepted"] == 1
    topic, messages = transport.publish.await_args.args
    assert topic == get_runtime().settings.change_topic
    [message] = messages
    note = ChangeNotification.from_message(message.body)
    assert (note.map, str(note.record_id), note.operation.value) == ("projects", PROJECT_ID, "update")
    assert message.message_id == note.message_id and message.session_id == note.session_id
    assert message.application_properties == {"map": "projects", "source": "dataverse", "operation": "update"}


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b"{not json", {"Content-Type": "application/json"}, 400),
    (b"[]", {"Content-Type": "application/json"}, 400),
    (context_body("Update"), {"Content-Type": "text/plain"}, 415),
    (context_body("Update").replace(b'"msdyn_project"', b'"msdyn_unknowntable"'), {"Content-Type": "application/json"}, 422),
    (b"[" * 100_000, {"Content-Type": "application/json"}, 400),
])
async def test_rejected_requests_publish_nothing(transport, body, headers, status):
    resp = await webhooks.dataverse_webhook.build().get_user_function()(request(body, headers))
    assert resp.status_code == status
    assert json.loads(resp.get_body())["status"] == status
    transport.publish.assert_not_called()


async def test_shared_secret_is_checked(transport, monkeypatch):
    monkeypatch.setattr(get_runtime().settings, "webhook_secret", SecretStr("hook-secret-1"))
    handler = webhooks.dataverse_webhook.build().get_user_function()
    wrong = await handler(request(context_body("Update"), {**webhook_headers("Update"), "x-dualsync-key": "nope"}))
    assert wrong.status_code == 401 and b"hook-secret-1" not in wrong.get_body()
    transport.publish.assert_not_called()
    right = await handler(request(context_body("Update"),
                                  {**webhook_headers("Update"), "x-dualsync-key": "hook-secret-1"}))
    assert right.status_code == 202


def test_http_functions_have_function_level_auth(app_functions):
    for name, route in (("dataverse_webhook", "dataverse/webhook"), ("finance_events", "finance/events")):
        binding = next(b for b in json.loads(app_functions[name].get_function_json())["bindings"]
                       if b["type"] == "httpTrigger")
        assert (binding["route"], binding["authLevel"], binding["methods"]) == (route, "FUNCTION", ["POST"])
