"""A row whose current state the target refuses is ONE error record, however many notifications of it fail.

The handler reads the source's current state, so every notification of that row still queued when the
bad value landed fails the same way (the chaos run had 16 per bad project name). Each used to become its
own record (the message id, version included, was part of the record's identity): an operator saw dozens
of failures for one cause, and replay published each again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.events.notification import ChangeNotification, Origin
from shared.operations import Operations
from shared.settings import load_settings
from shared.state.models import ErrorStatus
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.outcome import Applied, Classification, DeadLetter
from shared.sync.service import Delivery, SyncService
from shared.sync.sides import DataverseSide, FinanceSide
from shared.transport.base import Transport
from tests.sync.test_handler_e2e import COMPILED, FIXTURES, TOKEN, create_project, dv_client, finance_rows

TOPIC = "dualsync-changes"


@pytest.fixture
async def service(emulators, tmp_path, mocker):
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    fo.app.state.emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    fo.app.state.emulator.load_rows("LegalEntities", [{"LegalEntityId": "USPM", "Name": "Contoso US"}])
    fo.app.state.emulator.load_rows("CustomersV3", [
        {"dataAreaId": "uspm", "CustomerAccount": "C-1", "OrganizationName": "Fabrikam",
         "CustomerGroupId": "10", "SalesCurrencyCode": "USD"}])
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=5.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    sides = {Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), COMPILED),
             Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), COMPILED)}
    transport = mocker.AsyncMock(spec=Transport)
    svc = SyncService(SyncHandler(COMPILED, sides, state), state, transport, TOPIC)
    for map_name, key in (("legal_entities", '["USPM"]'), ("customers", '["USPM","C-1"]')):
        note = ChangeNotification(map=map_name, source=Side.FINANCE, key=key, time=datetime.now(UTC),
                                  origin=Origin.BUSINESS_EVENT)
        assert isinstance(await svc.process(map_name, Delivery(note.to_message().body)), Applied)
    yield svc, dv, fo
    await state.close()
    await registry.aclose()


def _delivery(record_id: str, version: int, attempt: int = 0) -> Delivery:
    note = ChangeNotification(map="projects", source=Side.DATAVERSE, record_id=record_id, version=version,
                              attempt=attempt, time=datetime.now(UTC), origin=Origin.WEBHOOK)
    message = note.to_message()
    return Delivery(message.body, message_id=message.message_id, session_id=message.session_id)


async def test_every_notification_of_a_refused_row_is_one_record(service):
    svc, dv, fo = service
    bad = create_project(dv, "P-7", "C-1", name="x" * 61)  # ProjectName is 60 characters in Finance
    other = create_project(dv, "P-8", "C-1", name="y" * 61)
    # notifications of earlier versions still queued, a retry, a duplicate: all read the same bad row
    for version, attempt in ((101, 0), (102, 0), (102, 0), (103, 1)):
        outcome = await svc.process("projects", _delivery(bad, version, attempt))
        assert isinstance(outcome, DeadLetter) and outcome.classification is Classification.VALIDATION
    await svc.process("projects", _delivery(other, 104))

    records = await svc.state.list_errors("projects", ErrorStatus.OPEN, 100)
    by_key = {r.key: r for r in records}
    assert len(records) == 2 and set(by_key) == {bad, other}
    assert by_key[bad].occurrences == 4 and by_key[other].occurrences == 1
    assert "ProjectName" in by_key[bad].reason
    assert by_key[bad].payload["version"] == 103  # the latest notification is the one replay sends


async def test_a_replayed_record_that_fails_again_is_reopened_then_cleared_once_fixed(service):
    svc, dv, fo = service
    bad = create_project(dv, "P-9", "C-1", name="x" * 61)
    await svc.process("projects", _delivery(bad, 201))
    [record] = await svc.state.list_errors("projects", ErrorStatus.OPEN, 100)
    ops = Operations(load_catalog(FIXTURES), svc.state, svc.transport, TOPIC)
    await ops.replay(record.id)
    [message] = svc.transport.publish.await_args.args[1]
    first_replay_id = message.message_id

    # the replay fails again (cause not fixed): the same record is open again, not a second one
    await svc.process("projects", Delivery(message.body, message_id=message.message_id,
                                           session_id=message.session_id))
    [again] = await svc.state.list_errors("projects", ErrorStatus.OPEN, 100)
    assert again.id == record.id and again.occurrences == 2
    await ops.replay(again.id)
    [message] = svc.transport.publish.await_args.args[1]
    assert message.message_id != first_replay_id  # not dropped by duplicate detection

    with dv_client(dv) as c:  # the cause fixed at the source: the replay lands
        assert c.patch(f"msdyn_projects({bad})", json={"msdyn_subject": "Office move"},
                       headers={"If-Match": "*"}).status_code == 204
    assert isinstance(await svc.process("projects", Delivery(message.body, message_id=message.message_id,
                                                             session_id=message.session_id)), Applied)
    assert [r["ProjectName"] for r in finance_rows(fo, "ProjCDSProjects")] == ["Office move"]
    assert await svc.state.list_errors("projects", ErrorStatus.OPEN, 100) == []
