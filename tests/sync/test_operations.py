"""Operator actions: status, pause/resume, errors, replay (exact publish asserted), dismiss."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.catalog.models import Side
from shared.events.notification import ChangeNotification, Origin
from shared.operations import NotReplayable, Operations, UnknownMap
from shared.runtime import get_runtime
from shared.state.models import ErrorClassification, ErrorReport
from shared.state.sqlite import SqliteStateStore
from shared.transport.base import Transport

TOPIC = "dualsync-changes"


@pytest.fixture
async def ops(tmp_path, mocker):
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    transport = mocker.AsyncMock(spec=Transport)
    transport.active_count.return_value = 3
    transport.dead_letter_count.return_value = 0
    yield Operations(get_runtime().catalog, state, transport, TOPIC)
    await state.close()


async def _failure(ops: Operations) -> str:
    note = ChangeNotification(map="projects", source=Side.DATAVERSE, record_id="6d81597f-0000-4000-8000-000000000001",
                              time=datetime.now(UTC), origin=Origin.WEBHOOK, attempt=4)
    record = await ops.state.record_error(ErrorReport(
        map="projects", key=note.record, classification=ErrorClassification.MAPPING, reason="value not in the value map",
        payload=note.model_dump(mode="json", exclude_none=True), message_id=note.message_id,
        session_id=note.session_id))
    return record.id


async def test_pause_resume_and_status(ops):
    assert (await ops.pause("projects", "maintenance"))["state"] == "paused"
    status = await ops.status()
    assert status["maps"]["projects"]["state"] == "paused" and status["maps"]["projects"]["reason"] == "maintenance"
    assert status["maps"]["actuals"]["state"] == "running" and status["maps"]["actuals"]["backlog"] == {
        "active": 3, "scheduled": None, "dead_letters": 0}
    assert (await ops.resume("projects"))["state"] == "running"
    with pytest.raises(UnknownMap):
        await ops.pause("nope")


async def test_replay_publishes_the_kept_notification_once(ops):
    error_id = await _failure(ops)
    [listed] = await ops.errors("projects")
    assert listed["id"] == error_id and listed["classification"] == "mapping"
    assert (await ops.replay(error_id))["status"] == "replayed"
    ops.transport.publish.assert_awaited_once()
    topic, [message] = ops.transport.publish.await_args.args
    replayed = ChangeNotification.from_message(message.body)
    assert topic == TOPIC
    assert (replayed.map, str(replayed.record_id), replayed.attempt, replayed.origin) == (
        "projects", "6d81597f-0000-4000-8000-000000000001", 0, Origin.REPLAY)
    assert message.session_id == replayed.session_id
    assert message.message_id.endswith(f"~replay-{error_id[:12]}-1") and len(message.message_id) <= 128
    with pytest.raises(NotReplayable):
        await ops.replay(error_id)  # already replayed
    assert await ops.errors("projects") == []


async def test_dismiss(ops):
    error_id = await _failure(ops)
    assert (await ops.dismiss(error_id))["status"] == "dismissed"
    assert (await ops.error(error_id))["status"] == "dismissed"
    ops.transport.publish.assert_not_called()


# --- backlog probes and last success ----------------------------------------------------------------
async def test_service_bus_probe_reads_subscription_runtime_properties(mocker):
    from azure.servicebus.management import SubscriptionRuntimeProperties

    from shared.operations import Backlog, ServiceBusProbe

    admin = mocker.AsyncMock()
    props = mocker.Mock(spec=SubscriptionRuntimeProperties, active_message_count=12, dead_letter_message_count=2)
    admin.get_subscription_runtime_properties.return_value = props
    backlog = await ServiceBusProbe(admin).backlog(TOPIC, "projects")
    admin.get_subscription_runtime_properties.assert_awaited_once_with(TOPIC, "projects")
    # scheduled messages sit on the topic in Service Bus: unknown per map, so null rather than 0
    assert backlog == Backlog(active=12, scheduled=None, dead_letters=2)


async def test_service_bus_probe_without_manage_rights_says_unknown(mocker):
    from azure.core.exceptions import ClientAuthenticationError

    from shared.operations import Backlog, ServiceBusProbe

    admin = mocker.AsyncMock()
    admin.get_subscription_runtime_properties.side_effect = ClientAuthenticationError("Unauthorized: Manage claim")
    assert await ServiceBusProbe(admin).backlog(TOPIC, "projects") == Backlog(None, None, None)


async def test_status_through_a_transport_that_cannot_count(ops):
    ops.transport.active_count.return_value = None
    ops.transport.dead_letter_count.side_effect = RuntimeError("no management link")
    from shared.operations import TransportProbe

    ops.probe = TransportProbe(ops.transport)
    status = await ops.status()
    assert status["maps"]["projects"]["backlog"] == {"active": None, "scheduled": None, "dead_letters": None}


def test_backlog_probe_follows_the_settings(tmp_path, monkeypatch):
    from shared.operations import LocalBrokerProbe, ServiceBusProbe, TransportProbe, backlog_probe
    from shared.settings import load_settings
    from shared.transport.local import LocalBroker, LocalBrokerTransport

    local = load_settings(broker_path=tmp_path / "b.sqlite")
    assert isinstance(backlog_probe(local, LocalBrokerTransport(LocalBroker(tmp_path / "b.sqlite"))),
                      LocalBrokerProbe)
    sb = load_settings(transport="servicebus", servicebus_connection=(
        "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"))
    probe = backlog_probe(sb, object())  # type: ignore[arg-type]
    assert isinstance(probe, ServiceBusProbe)
    assert isinstance(backlog_probe(load_settings(transport="servicebus"), object()),  # type: ignore[arg-type]
                      TransportProbe)


async def test_success_marker_writes_at_most_once_per_interval(ops):
    from shared.operations import SuccessMarker

    now = [100.0]
    marker = SuccessMarker(ops.state, interval=30, clock=lambda: now[0])
    assert await marker.mark("projects", datetime(2025, 5, 1, 12, 0, tzinfo=UTC))
    assert not await marker.mark("projects", datetime(2025, 5, 1, 12, 0, 10, tzinfo=UTC))
    assert (await ops.status())["maps"]["projects"]["last_success"] == "2025-05-01T12:00:00+00:00"
    now[0] += 31
    assert await marker.mark("projects", datetime(2025, 5, 1, 12, 1, tzinfo=UTC))
    assert (await ops.status())["maps"]["projects"]["last_success"] == "2025-05-01T12:01:00+00:00"
    assert (await ops.status())["maps"]["actuals"]["last_success"] is None


async def test_processing_an_applied_change_shows_last_success_in_status(emulators, tmp_path, mocker):
    """A notification processed through the emulators stamps the map's last success; a skip does not."""
    from shared.catalog import load_catalog
    from shared.connectors.dataverse import DataverseConnector
    from shared.connectors.finance import FinanceConnector
    from shared.connectors.http import registry
    from shared.mapping import compile_catalog
    from shared.settings import load_settings
    from shared.sync.handler import SyncHandler
    from shared.sync.outcome import Applied
    from shared.sync.service import Delivery, SyncService
    from shared.sync.sides import DataverseSide, FinanceSide

    fixtures = load_catalog(Path(__file__).parent / "fixtures")
    compiled = compile_catalog(fixtures)
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    fo.app.state.emulator.load_rows("LegalEntities", [{"LegalEntityId": "USPM", "Name": "Contoso US"}])
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token="t", retry_budget_seconds=5.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    try:
        transport = mocker.AsyncMock(spec=Transport)
        transport.active_count.return_value = 0
        transport.dead_letter_count.return_value = 0
        sides = {Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), compiled),
                 Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), compiled)}
        service = SyncService(SyncHandler(compiled, sides, state), state, transport, TOPIC)
        ops = Operations(fixtures, state, transport, TOPIC)
        assert (await ops.status())["maps"]["legal_entities"]["last_success"] is None

        note = ChangeNotification(map="legal_entities", source=Side.FINANCE, key='["USPM"]',
                                  time=datetime.now(UTC), origin=Origin.BUSINESS_EVENT)
        before = datetime.now(UTC)
        outcome = await service.process("legal_entities", Delivery(note.to_message().body))
        assert outcome == Applied("upsert", '["USPM"]')
        status = (await ops.status())["maps"]
        stamped = status["legal_entities"]["last_success"]
        assert stamped is not None and datetime.fromisoformat(stamped) >= before
        assert status["customers"]["last_success"] is None
    finally:
        await state.close()
        await registry.aclose()


@pytest.mark.parametrize(("auth", "expected"), [
    ({"auth_mode": "managed_identity", "client_id": "mi-client-id"}, {"managed_identity_client_id": "mi-client-id"}),
    ({"auth_mode": "client_secret", "tenant_id": "t", "client_id": "app-id", "client_secret": "s"}, {}),
    ({"auth_mode": "certificate", "tenant_id": "t", "client_id": "app-id", "client_certificate_path": "c.pem"}, {}),
])
def test_service_bus_probe_credential_per_auth_mode(mocker, auth, expected):
    from shared.operations import ServiceBusProbe, backlog_probe
    from shared.settings import load_settings

    credential = mocker.patch("azure.identity.aio.DefaultAzureCredential")
    admin = mocker.patch("azure.servicebus.aio.management.ServiceBusAdministrationClient")
    settings = load_settings(**auth, transport="servicebus", servicebus_namespace="ns.servicebus.windows.net")
    assert isinstance(backlog_probe(settings, object()), ServiceBusProbe)  # type: ignore[arg-type]
    credential.assert_called_once_with(**expected)
    admin.assert_called_once_with("ns.servicebus.windows.net", credential.return_value)


# --- errors kept from the ingress queues ------------------------------------------------------------
async def test_ingress_error_replays_to_its_queue_and_then_routes(tmp_path):
    """A context for a table the catalog did not know is kept under the queue's name; once the catalog
    knows it, replay sends the stored body and properties back to that queue, and the ingress
    handler then publishes the notification."""
    from shared.catalog.models import Catalog
    from shared.events.ingress import Ingress, IngressKind, handle_ingress
    from shared.transport.local import LocalBroker, LocalBrokerTransport
    from shared.transport.messages import REPLAY_OF, subscription_path
    from tests.events.samples import catalog, compiled, context_body, servicebus_properties

    queues = {IngressKind.DATAVERSE: "dv-ingress", IngressKind.FINANCE: "fo-ingress"}
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    for queue in queues.values():
        await broker.create_queue(queue)
    await broker.create_topic(TOPIC, duplicate_detection_window=None)
    await broker.create_subscription(TOPIC, "all", requires_session=True)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    transport = LocalBrokerTransport(broker)
    try:
        full = catalog()
        without = Catalog({n: m for n, m in full.maps.items() if m.dataverse.table != "msdyn_project"})
        body, props = context_body("Update"), servicebus_properties()
        before = Ingress(without, compiled(), transport, state, TOPIC, queues, 1 << 20)
        kept = await handle_ingress(IngressKind.DATAVERSE, body, props, before, content_type="application/json",
                                    message_id="sb-42")
        assert kept.sent == 0 and kept.error is not None and kept.error.map == "dv-ingress"

        ops = Operations(full, state, transport, TOPIC, ingress_queues=queues.values())
        [listed] = await ops.errors("dv-ingress")  # the queue name works as a map filter
        assert listed["id"] == kept.error.id
        assert await ops.errors("fo-ingress") == []
        with pytest.raises(UnknownMap):
            await ops.errors("no-such-queue")
        with pytest.raises(UnknownMap):
            await ops.pause("dv-ingress")  # a queue is not a map that can be paused

        replayed = await ops.replay(kept.error.id)
        assert replayed["status"] == "replayed" and replayed["map"] == "dv-ingress"
        [message] = await broker.receive("dv-ingress", 10)
        import json as _json

        assert _json.loads(message.body) == _json.loads(body)
        assert message.content_type == "application/json" and message.session_id is None
        claims = {k.lower(): v for k, v in props.items()}
        assert {k: message.application_properties[k] for k in claims} == claims
        assert message.application_properties[REPLAY_OF] == "sb-42"
        assert message.message_id == replayed["message_id"] and message.message_id.startswith("sb-42~replay-")
        assert await broker.receive(subscription_path(TOPIC, "all"), 10) == []  # nothing went to the topic

        after = Ingress(full, compiled(), transport, state, TOPIC, queues, 1 << 20)
        routed = await handle_ingress(IngressKind.DATAVERSE, message.body, message.application_properties, after,
                                      content_type=message.content_type, message_id=message.message_id)
        assert routed.sent == 1 and routed.error is None
        assert (await ops.error(kept.error.id))["status"] == "replayed"
        assert (await ops.replay_all("dv-ingress")) == {"replayed": [], "not_replayable": []}
    finally:
        await state.close()
        await broker.close()


async def test_ingress_error_whose_body_was_cut_is_not_replayable(ops):
    from shared.operations import NotReplayable

    ops.ingress_queues = frozenset({"dv-ingress"})
    record = await ops.state.record_error(ErrorReport(
        map="dv-ingress", key="sb-9", classification=ErrorClassification.BAD_MESSAGE, reason="too large",
        payload={"body": "{\"Primary", "properties": {}, "body_bytes": 300_000}, message_id="sb-9"))
    with pytest.raises(NotReplayable, match="first"):
        await ops.replay(record.id)
    ops.transport.publish.assert_not_called()
