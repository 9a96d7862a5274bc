"""The documented RemoteExecutionContext, adapted to msdyn_project, accepted and routed."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.catalog.models import Side
from shared.events.errors import UnknownTable
from shared.events.intake import accept_dataverse
from shared.events.notification import ChangeNotification, Operation, Origin
from tests.events.samples import (
    CORRELATION_ID,
    OPERATION_ID,
    PROJECT_ID,
    SECRET,
    catalog,
    context_body,
    context_text,
    stripped_body,
    webhook_headers,
)

# OperationCreatedOn is "\/Date(1506409448000-0700)\/": the milliseconds are UTC, the offset is informational.
CREATED = datetime.fromtimestamp(1506409448, UTC)


@pytest.mark.parametrize(("message", "operation", "version"), [
    ("Create", Operation.CREATE, 5637611083),
    ("Update", Operation.UPDATE, 5637611083),
    ("Delete", Operation.DELETE, None),  # Delete's Target is an EntityReference: no version
])
def test_documented_context_is_accepted(message: str, operation: Operation, version: int | None) -> None:
    result = accept_dataverse(context_body(message), webhook_headers(message), catalog(),
                              expected_secret=None)
    assert result.ignored_reason is None
    (n,) = result.notifications
    assert n.map == "projects" and n.source is Side.DATAVERSE
    assert n.record_id == UUID(PROJECT_ID) and n.key is None
    assert n.operation is operation
    assert n.version == version
    assert n.time == CREATED
    assert n.correlation_id == CORRELATION_ID
    assert n.change_id == OPERATION_ID
    assert n.depth == 1 and n.tag is None
    assert n.origin is Origin.WEBHOOK
    assert ChangeNotification.from_message(n.to_message().body) == n


def test_raw_text_keeps_the_escaped_slashes_dataverse_writes() -> None:
    text = context_text()
    assert r'"\/Date(1506409448000-0700)\/"' in text
    assert r'"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts"' in text


@pytest.mark.parametrize("message", ["Create", "Update", "Delete"])
def test_stripped_webhook_context_still_routes(message: str) -> None:
    headers = webhook_headers(message, **{"x-ms-dynamics-msg-size-exceeded": "true"})
    (n,) = accept_dataverse(stripped_body(message), headers, catalog()).notifications
    assert (n.map, n.record_id, n.operation) == ("projects", UUID(PROJECT_ID), Operation(message.lower()))
    assert n.version is None and n.change_id == OPERATION_ID  # no images: the operation id tells changes apart


def test_stripped_service_bus_context_routes_from_properties() -> None:
    props = {"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName": "msdyn_project",
             "http://schemas.microsoft.com/xrm/2011/Claims/RequestName": "Update", "MessageMaxSizeExceeded": True}
    result = accept_dataverse(stripped_body(), props, catalog(), origin=Origin.SERVICEBUS_ENDPOINT,
                              require_content_type=False)
    (n,) = result.notifications
    assert n.origin is Origin.SERVICEBUS_ENDPOINT and n.correlation_id == CORRELATION_ID  # from the body


def test_the_shared_secret_lets_the_request_in() -> None:
    headers = webhook_headers(**{"X-DualSync-Key": SECRET})
    assert len(accept_dataverse(context_body(), headers, catalog(), expected_secret=SECRET).notifications) == 1


def test_echo_tag_is_read_from_the_parent_context() -> None:
    (n,) = accept_dataverse(context_body(tag="dualsync:7f3a"), webhook_headers(), catalog()).notifications
    assert n.tag == "dualsync:7f3a"


def test_version_comes_from_the_images_when_the_target_has_none() -> None:
    text = context_text(version=41).replace('{"key": "versionnumber", "value": 41},', "", 1)
    assert text.count('"versionnumber"') == 2  # post image + parent context target remain
    (n,) = accept_dataverse(text.encode(), webhook_headers(), catalog()).notifications
    assert n.version == 41


def test_a_table_whose_maps_never_take_dataverse_as_a_source_is_accepted_with_nothing() -> None:
    # legal_entities is finance_to_dataverse: cdm_company is only ever written by us.
    body = (stripped_body().decode().replace("msdyn_project", "cdm_company")).encode()
    result = accept_dataverse(body, webhook_headers(), catalog())
    assert result.notifications == ()
    assert result.ignored_reason is not None and "legal_entities" in result.ignored_reason
    assert result.messages() == []


def test_a_bidirectional_map_takes_dataverse_changes() -> None:
    body = stripped_body("Create").decode().replace("msdyn_project", "account").encode()
    (n,) = accept_dataverse(body, webhook_headers(), catalog()).notifications
    assert n.map == "customers" and n.operation is Operation.CREATE


def test_every_map_on_a_table_gets_its_own_notification() -> None:
    from shared.catalog import Catalog

    base = catalog()
    twin = base["projects"].model_copy(update={"name": "projects_copy"})
    doubled = Catalog({**base.maps, "projects_copy": twin})
    result = accept_dataverse(context_body(), webhook_headers(), doubled)
    assert sorted(n.map for n in result.notifications) == ["projects", "projects_copy"]
    ids = {m.message_id for m in result.messages()}
    assert len(ids) == 2  # distinct maps, distinct messages


def test_unknown_table_is_a_422_naming_the_table() -> None:
    body = stripped_body().decode().replace("msdyn_project", "contact").encode()
    with pytest.raises(UnknownTable) as info:
        accept_dataverse(body, webhook_headers(), catalog())
    assert info.value.status == 422 and "'contact'" in info.value.message
