"""Finance data events: the RemoteExecutionContext of the entity's virtual table, routed like business events."""

from __future__ import annotations

import json

import pytest

from shared.catalog.models import Side
from shared.events.errors import InvalidShape, UnknownEntity
from shared.events.intake import accept_finance
from shared.events.notification import Operation, Origin
from tests.events.samples import (
    CORRELATION_ID,
    JSON_HEADERS,
    OPERATION_ID,
    business_event,
    catalog,
    compiled,
    data_event_body,
)


def accept(body: bytes):
    return accept_finance(body, JSON_HEADERS, catalog(), compiled(), origin=Origin.SERVICEBUS_ENDPOINT,
                          require_content_type=False)


@pytest.mark.parametrize(("message", "operation"), [
    ("Create", Operation.CREATE), ("Update", Operation.UPDATE), ("Delete", Operation.DELETE),
])
def test_data_event_routes_with_the_key_from_target_or_pre_image(message: str, operation: Operation) -> None:
    result = accept(data_event_body(message, account="C-7", company="usmf"))
    (n,) = result.notifications
    assert (n.map, n.source, n.operation) == ("customers", Side.FINANCE, operation)
    assert n.key == compiled()["customers"].key_string(Side.FINANCE, {"dataAreaId": "usmf", "CustomerAccount": "C-7"})
    assert n.version is None and n.change_id == OPERATION_ID and n.correlation_id == CORRELATION_ID
    assert n.origin is Origin.SERVICEBUS_ENDPOINT
    assert result.control is None  # data events carry no ControlNumber


def test_distinct_data_events_get_distinct_message_ids_and_one_session() -> None:
    a = accept(data_event_body("Update", operation_id="11111111-1111-4111-8111-111111111111")).messages()[0]
    b = accept(data_event_body("Update", operation_id="22222222-2222-4222-8222-222222222222")).messages()[0]
    again = accept(data_event_body("Update", operation_id="11111111-1111-4111-8111-111111111111")).messages()[0]
    assert a.message_id != b.message_id and a.message_id == again.message_id
    assert a.session_id == b.session_id


def test_business_events_still_take_the_business_event_path() -> None:
    result = accept(json.dumps(business_event()).encode())
    assert result.control is not None and result.control.control_number == 5637611083


@pytest.mark.parametrize(("mutate", "error", "text"), [
    (lambda d: d.pop("InputParameters"), InvalidShape, "stripped data event"),
    (lambda d: d["InputParameters"].pop(), InvalidShape, "InputParameters.PreImage is missing"),
    (lambda d: d["InputParameters"][1]["value"]["Attributes"].pop(2), InvalidShape, "CustomerAccount is missing"),
    (lambda d: (d.update(PrimaryEntityName="mserp_unknownentity"),
                d["InputParameters"][0]["value"].update(LogicalName="mserp_unknownentity")), UnknownEntity,
     "virtual table 'mserp_unknownentity'"),
])
def test_bad_data_events_are_rejected_with_the_reason(mutate, error, text) -> None:
    data = json.loads(data_event_body("Delete"))
    mutate(data)
    with pytest.raises(error, match=text):
        accept(json.dumps(data).encode())
