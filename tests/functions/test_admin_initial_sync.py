"""POST ops/maps/{map}/initial-sync: the real planner (shared/bulk/distributed.py) reads legal entities from
the emulators over loopback and publishes work items to the local broker's work queue."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import functions.admin as admin
from shared.bulk.distributed import WorkItem
from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.operations import LocalBrokerProbe, Operations
from shared.runtime import get_runtime
from shared.settings import load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync import factory
from shared.sync.handler import SyncHandler
from shared.sync.service import SyncService
from shared.sync.sides import DataverseSide, FinanceSide
from shared.transport.local import LocalBrokerTransport
from tests.conftest import EMULATOR_TOKEN
from tests.functions.test_admin_world import TOPIC, build_broker


@pytest.fixture
async def world(emulators, tmp_path, monkeypatch):
    from sandbox.demo.load import load

    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    load(dv.app.state.emulator, fo.app.state.emulator, rows=40, seed=5)
    runtime = get_runtime()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=EMULATOR_TOKEN, retry_budget_seconds=5.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    broker = await build_broker(tmp_path / "broker.sqlite", runtime.catalog)
    await broker.create_queue(runtime.settings.work_queue, requires_session=True)
    transport = LocalBrokerTransport(broker)
    service = SyncService(SyncHandler(runtime.compiled, {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), runtime.compiled),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), runtime.compiled),
    }, state), state, transport, TOPIC)
    ops = Operations(runtime.catalog, state, transport, TOPIC, backlog=LocalBrokerProbe(broker))

    async def get_service() -> SyncService:
        return service

    async def get_operations() -> Operations:
        return ops

    monkeypatch.setattr(factory, "get_service", get_service)
    monkeypatch.setattr(admin, "get_operations", get_operations)
    yield broker, dv, runtime.settings.work_queue
    await state.close()
    await broker.close()
    await registry.aclose()


async def start(map_name: str) -> tuple[int, dict]:
    req = func.HttpRequest("POST", f"/api/ops/maps/{map_name}/initial-sync", route_params={"map": map_name},
                           body=b"")
    resp = await admin.ops_initial_sync.build().get_user_function()(req)
    return resp.status_code, json.loads(resp.get_body())


async def test_company_map_gets_one_work_item_per_legal_entity(world):
    broker, dv, queue = world
    companies = {str(r["cdm_companycode"]).lower() for r in dv.app.state.emulator.rows("cdm_companies")}
    assert companies  # the demo data has legal entities to plan for

    code, body = await start("actuals")
    assert code == 200, body
    assert (body["queue"], body["maps"]) == (queue, {"actuals": body["items"]})
    assert body["items"] >= len(companies)
    items = [WorkItem.from_body(m.body) for m in await broker.peek(queue, 1000)]
    assert len(items) == body["items"]
    assert {i.map for i in items} == {"actuals"} and {i.run for i in items} == {body["run"]}
    assert companies <= {i.company for i in items}


async def test_unknown_map_is_404_and_publishes_nothing(world):
    broker, _, queue = world
    code, body = await start("no_such_map")
    assert code == 404 and body["map"] == "no_such_map"
    assert await broker.peek(queue, 10) == []


def test_initial_sync_route_has_admin_auth(app_functions):
    [binding] = [b for b in json.loads(app_functions["ops_initial_sync"].get_function_json())["bindings"]
                 if b["type"] == "httpTrigger"]
    assert (binding["route"], binding["methods"], binding["authLevel"]) == (
        "ops/maps/{map}/initial-sync", ["POST"], "ADMIN")
