"""The per-map sync and dead-letter functions called directly with constructed Service Bus messages.

The engine runs for real against both emulators and a SQLite state store; only Service Bus (the
transport the functions schedule retries on) is replaced, with pytest-mock, asserting the exact calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import azure.functions.servicebus as azf_sb
import pytest

import functions.sync as sync_functions
from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.events.notification import ChangeNotification, Origin
from shared.runtime import get_runtime
from shared.settings import load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.service import SyncService
from shared.sync.sides import DataverseSide, FinanceSide
from shared.transport.base import Transport

TOKEN = "t"
TOPIC = "dualsync-changes"


@pytest.fixture
def servers(emulators):
    return emulators


@pytest.fixture
async def service(servers, tmp_path, mocker):
    dv, fo = servers
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=3.0)
    compiled = get_runtime().compiled
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    transport = mocker.AsyncMock(spec=Transport)
    handler = SyncHandler(compiled, {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), compiled),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), compiled),
    }, state)
    svc = SyncService(handler, state, transport, TOPIC)

    async def get_service():
        return svc

    mocker.patch.object(sync_functions, "get_service", get_service)
    yield svc, fo
    await state.close()
    await registry.aclose()


def message(note: ChangeNotification, delivery_count: int = 1, **extra) -> azf_sb.ServiceBusMessage:
    out = note.to_message()
    return azf_sb.ServiceBusMessage(body=out.body, message_id=out.message_id, session_id=out.session_id,
                                    application_properties=dict(out.application_properties),
                                    user_properties=extra.pop("user_properties", {}),
                                    delivery_count=delivery_count, **extra)


def note(map_name: str, key: str, **kw) -> ChangeNotification:
    return ChangeNotification(map=map_name, source=Side.FINANCE, key=key, time=datetime.now(UTC),
                              origin=Origin.BUSINESS_EVENT, **kw)


def call(function_name: str, msg) -> None:
    fn = sync_functions.bp
    target = next(f for f in fn._function_builders if f._function.get_function_name() == function_name)
    return target._function.get_user_function()(msg)


async def test_sync_function_applies_a_change(service):
    svc, fo = service
    fo.app.state.emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    await call("sync_currencies", message(note("currencies", '["USD"]')))
    [row] = await svc.state.list_errors(status=None) or [None]
    assert row is None  # nothing failed
    ledger = await svc.state.get_ledger("currencies", '["USD"]|to-dataverse')
    assert ledger is not None and ledger.source_side == "finance"
    svc.transport.schedule.assert_not_called()


async def test_missing_parent_schedules_the_notification_again(service):
    svc, fo = service
    fo.app.state.emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    fo.app.state.emulator.load_rows("CustomersV3", [
        {"dataAreaId": "uspm", "CustomerAccount": "C-1", "OrganizationName": "Fabrikam",
         "PartyType": "Organization", "CustomerGroupId": "10", "SalesCurrencyCode": "USD"}])
    # the customer's legal entity is not in Dataverse yet: a dependency, retried later
    n = note("customers", '["USPM","C-1"]', version=7)
    before = datetime.now(UTC)
    await call("sync_customers", message(n))
    svc.transport.schedule.assert_awaited_once()
    entity, sent, at = svc.transport.schedule.await_args.args
    again = ChangeNotification.from_message(sent.body)
    assert entity == TOPIC
    assert again.attempt == 1 and again.key == '["USPM","C-1"]'
    assert sent.session_id == n.session_id  # same record, same session: order kept
    assert sent.message_id != n.message_id == n.to_message().message_id
    assert before + timedelta(seconds=4) <= at <= datetime.now(UTC) + timedelta(seconds=6)
    assert sent.application_properties == {"map": "customers", "source": "finance", "operation": "unknown"}
    assert await svc.state.list_errors("customers") == []  # a retry is not an error (yet)


async def test_unreadable_message_is_kept_with_its_reason(service):
    svc, fo = service
    msg = azf_sb.ServiceBusMessage(body=b"{not json", message_id="m-1", session_id="s-1",
                                   application_properties={}, user_properties={}, delivery_count=1)
    await call("sync_projects", msg)
    [record] = await svc.state.list_errors("projects")
    assert (record.classification, record.message_id, record.session_id) == ("bad-message", "m-1", "s-1")
    assert "unreadable notification" in record.reason


async def test_dead_letter_function_records_the_reason(service):
    svc, fo = service
    n = note("projects", '["USPM","P-1"]')
    msg = message(n, delivery_count=10, user_properties={
        "DeadLetterReason": "MaxDeliveryCountExceeded",
        "DeadLetterErrorDescription": "Message could not be consumed after 10 delivery attempts."})
    await call("deadletter_projects", msg)
    [record] = await svc.state.list_errors("projects")
    assert (record.classification, record.reason, record.delivery_count) == (
        "max-deliveries", "MaxDeliveryCountExceeded", 10)
    assert record.key == '["USPM","P-1"]' and record.payload["map"] == "projects"
