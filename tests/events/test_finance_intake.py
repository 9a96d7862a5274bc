"""Finance business events: routing by entity, the integration key, ControlNumber, the test message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.catalog.models import Side
from shared.events.errors import UnknownEntity
from shared.events.finance import is_newer
from shared.events.intake import accept_finance
from shared.events.notification import ChangeNotification, Operation, Origin
from tests.events.samples import JSON_HEADERS, business_event, catalog, compiled, event_body


def accept(body: bytes, **kw: object) -> tuple[ChangeNotification, ...]:
    return accept_finance(body, JSON_HEADERS, catalog(), compiled(), **kw).notifications  # type: ignore[arg-type]


@pytest.mark.parametrize(("operation", "expected"), [
    ("Create", Operation.CREATE), ("Update", Operation.UPDATE), ("Delete", Operation.DELETE),
])
def test_business_event_routes_to_the_map_with_its_integration_key(operation: str, expected: Operation) -> None:
    (n,) = accept(event_body(operation))
    assert n.map == "customers" and n.source is Side.FINANCE
    assert n.key == '["USMF","C-1"]'  # company upper case, as the key is expressed on both sides
    assert n.record_id is None
    assert n.operation is expected
    assert n.version == 5637611083
    assert n.time == datetime(2022, 12, 30, 13, 51, 15, 294274, tzinfo=UTC)
    assert n.change_id == n.correlation_id == "0F8FAD5B-D9CB-469F-A165-70867728950E"
    assert n.origin is Origin.BUSINESS_EVENT


def test_the_key_is_the_one_the_compiled_map_computes_from_a_finance_row() -> None:
    (n,) = accept(event_body(dataAreaId="gbsi", CustomerAccount="C-9"))
    assert n.key == compiled()["customers"].key_string(Side.FINANCE, {"dataAreaId": "gbsi", "CustomerAccount": "C-9"})


def test_entity_set_names_route_too() -> None:
    (n,) = accept(event_body(entity="CustomersV3"))
    assert n.map == "customers"


def test_entity_and_operation_may_come_from_the_business_event_id() -> None:
    event = business_event("Delete")
    del event["EntityName"], event["Operation"]
    (n,) = accept(json.dumps(event).encode())
    assert (n.map, n.operation) == ("customers", Operation.DELETE)


def test_keys_may_come_in_a_keys_object_and_the_company_from_the_legal_entity() -> None:
    event = business_event()
    del event["dataAreaId"], event["CustomerAccount"]
    event["Keys"] = {"CustomerAccount": "C-2"}
    (n,) = accept(json.dumps(event).encode())
    assert n.key == '["USMF","C-2"]'


def test_a_shared_entity_has_no_company_in_its_key() -> None:
    body = event_body(entity="LegalEntityEntity", LegalEntityId="gbsi")
    (n,) = accept(body)
    assert (n.map, n.key) == ("legal_entities", '["GBSI"]')  # upper_lower conversion applied


def test_wcf_event_time_is_used_without_the_iso_one() -> None:
    event = business_event()
    del event["EventTimeIso8601"]
    (n,) = accept(json.dumps(event).encode())
    assert n.time == datetime.fromtimestamp(1672408275, UTC)


def test_an_entity_finance_only_receives_produces_nothing() -> None:
    body = event_body(entity="ProjCDSProjectEntity", dataAreaId="usmf", ProjectID="P-1")
    result = accept_finance(body, JSON_HEADERS, catalog(), compiled())
    assert result.notifications == () and "projects" in (result.ignored_reason or "")


def test_unknown_entity_is_a_422() -> None:
    with pytest.raises(UnknownEntity) as info:
        accept(event_body(entity="VendVendorV2Entity"))
    assert info.value.status == 422


@pytest.mark.parametrize("event", [
    {"BusinessEventId": "BusinessEventsTestEndpointContract", "ControlNumber": 0, "EventId": "",
     "EventTime": "/Date(1672408275000)/", "MajorVersion": 0, "MinorVersion": 0},
    {"BusinessEventId": "TestBusinessEvent"},
])
def test_the_activation_test_message_is_accepted_and_produces_nothing(event: dict[str, object]) -> None:
    result = accept_finance(json.dumps(event).encode(), JSON_HEADERS, catalog(), compiled())
    assert result.notifications == ()
    assert result.ignored_reason == "Finance endpoint activation test message"


def test_a_correlation_header_wins_over_the_event_id() -> None:
    headers = {**JSON_HEADERS, "x-ms-correlation-request-id": "corr-42"}
    (n,) = accept_finance(event_body(), headers, catalog(), compiled()).notifications
    assert n.correlation_id == "corr-42" and n.change_id == "0F8FAD5B-D9CB-469F-A165-70867728950E"


def test_is_newer() -> None:
    assert is_newer(5637611083, None)
    assert is_newer(5637611090, 5637611083)  # gaps are normal
    assert not is_newer(5637611083, 5637611083)  # duplicate
    assert not is_newer(5637611000, 5637611083)  # stale, arrived late
    seen: int | None = None
    applied = []
    for number in [10, 12, 11, 12, 40, 39, 41]:
        if is_newer(number, seen):
            applied.append(number)
            seen = number
    assert applied == [10, 12, 40, 41]
