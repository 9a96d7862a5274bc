"""Telemetry: one span per processed notification, naming map, key, side, attempt and outcome; no row
contents. The engine runs for real (both emulators over loopback, SQLite state, the local broker);
spans go to an in-memory exporter."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import shared.telemetry as telemetry
from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.events.notification import ChangeNotification, Origin
from shared.runtime import get_runtime
from shared.settings import SettingsError, load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.service import Delivery, SyncService
from shared.sync.sides import DataverseSide, FinanceSide
from shared.transport.local import LocalBroker, LocalBrokerTransport

TOKEN = "t"
TOPIC = "dualsync-changes"
# Row contents the emulators hold; none of them may appear in any span.
FIELD_VALUES = ("US dollar", "Fabrikam Telemetry Works", "Organization")


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def service(emulators, tmp_path):
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=3.0)
    compiled = get_runtime().compiled
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_topic(TOPIC)
    handler = SyncHandler(compiled, {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), compiled),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), compiled),
    }, state)
    yield SyncService(handler, state, LocalBrokerTransport(broker), TOPIC), fo
    await state.close()
    await broker.close()
    await registry.aclose()


def delivery(map_name: str, key: str, **kw) -> Delivery:
    note = ChangeNotification(map=map_name, source=Side.FINANCE, key=key, time=datetime.now(UTC),
                              origin=Origin.BUSINESS_EVENT, **kw)
    m = note.to_message()
    return Delivery(body=m.body, message_id=m.message_id, session_id=m.session_id)


async def test_one_span_per_processed_notification_without_row_contents(service, exporter):
    svc, fo = service
    fo.app.state.emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    fo.app.state.emulator.load_rows("CustomersV3", [
        {"dataAreaId": "uspm", "CustomerAccount": "C-1", "OrganizationName": "Fabrikam Telemetry Works",
         "PartyType": "Organization", "CustomerGroupId": "10", "SalesCurrencyCode": "USD"}])
    exporter.clear()
    outcomes = [
        await svc.process("currencies", delivery("currencies", '["USD"]', version=3)),  # applied
        await svc.process("customers", delivery("customers", '["USPM","C-1"]', attempt=2)),  # parent missing
        await svc.process("projects", delivery("currencies", '["USD"]')),  # misrouted
        await svc.process("projects", Delivery(body=b'{"not": "a notification"')),  # unreadable
    ]
    assert [type(o).__name__ for o in outcomes] == ["Applied", "Retry", "DeadLetter", "DeadLetter"]
    spans = [s for s in exporter.get_finished_spans() if s.name == telemetry.SYNC_SPAN]
    assert len(spans) == 4
    applied, retried, misrouted, unreadable = (dict(s.attributes or {}) for s in spans)
    assert applied == {"dualsync.map": "currencies", "dualsync.delivery_count": 1, "dualsync.key": '["USD"]',
                       "dualsync.side": "finance", "dualsync.attempt": 0, "dualsync.operation": "unknown",
                       "dualsync.origin": "business-event", "dualsync.outcome": "applied"}
    assert retried["dualsync.outcome"] == "retry" and retried["dualsync.attempt"] == 2
    assert retried["dualsync.key"] == '["USPM","C-1"]' and "dualsync.classification" in retried
    assert misrouted["dualsync.map"] == "projects" and misrouted["dualsync.outcome"] == "deadletter"
    assert unreadable == {"dualsync.map": "projects", "dualsync.delivery_count": 1,
                          "dualsync.outcome": "deadletter", "dualsync.classification": "bad-message"}
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET,
                                                     StatusCode.ERROR, StatusCode.ERROR]
    dumped = json.dumps([{"a": dict(s.attributes or {}), "e": [dict(e.attributes or {}) for e in s.events]}
                         for s in exporter.get_finished_spans()])
    for value in FIELD_VALUES:
        assert value not in dumped


async def test_a_crash_is_recorded_on_the_span(service, exporter, monkeypatch):
    svc, _ = service

    async def boom(*args, **kwargs):
        raise RuntimeError("connector exploded")

    monkeypatch.setattr(svc.handler, "handle", boom)
    exporter.clear()
    with pytest.raises(RuntimeError):
        await svc.process("currencies", delivery("currencies", '["USD"]'))
    [s] = [s for s in exporter.get_finished_spans() if s.name == telemetry.SYNC_SPAN]
    assert s.status.status_code is StatusCode.ERROR
    assert [e.name for e in s.events] == ["exception"]


def test_configure_is_off_by_default_and_needs_a_connection_string(monkeypatch, mocker):
    configure = mocker.patch("azure.monitor.opentelemetry.configure_azure_monitor")
    monkeypatch.setattr(telemetry, "_configured", False)
    base = {"dataverse_url": "https://a.crm.dynamics.com", "finance_url": "https://a.operations.dynamics.com"}
    assert telemetry.configure_telemetry(load_settings(**base)) is False
    monkeypatch.delenv(telemetry.CONNECTION_STRING, raising=False)
    with pytest.raises(SettingsError, match=telemetry.CONNECTION_STRING):
        telemetry.configure_telemetry(load_settings(**base, telemetry_enabled=True))
    monkeypatch.setenv(telemetry.CONNECTION_STRING, "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    assert telemetry.configure_telemetry(load_settings(**base, telemetry_enabled=True)) is True
    assert telemetry.configure_telemetry(load_settings(**base, telemetry_enabled=True)) is True
    configure.assert_called_once_with()  # once per process


def test_span_is_a_no_op_without_a_provider_and_drops_unknown_attributes():
    assert telemetry._clean({"a": None, "b": 1, "c": "x", "d": Side.FINANCE}) == {"b": 1, "c": "x", "d": "finance"}
    with telemetry.span("dualsync.test", anything=None) as s:
        assert s is not None
