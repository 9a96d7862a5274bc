"""The polling timer functions: inventory (one per map with a source side, the schedule setting) and
a direct call with a constructed timer request, against the emulators and the local broker."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import azure.functions.timer as azf_timer

import functions.timers as timer_functions
from shared.catalog.models import Side
from shared.pull import PullMode
from shared.pull.dataverse import checkpoint_name as dataverse_checkpoint
from shared.pull.finance import checkpoint_name as finance_checkpoint
from shared.runtime import get_runtime
from tests.pull.conftest import World, world  # noqa: F401  (the pull tests' world fixture)

ROOT = Path(__file__).resolve().parents[2]


def _trigger(fn) -> dict:
    return next(b for b in json.loads(fn.get_function_json())["bindings"] if b["direction"] == "IN")


def test_one_timer_per_map_with_a_source_side(app_functions):
    catalog = get_runtime().catalog
    timers = {n: f for n, f in app_functions.items() if _trigger(f)["type"] == "timerTrigger"}
    assert sorted(timers) == sorted(f"pull_{m.name}" for m in catalog if m.sources)
    assert len(timers) == len(catalog)  # every catalog map has at least one source side
    for fn in timers.values():
        t = _trigger(fn)
        assert t["schedule"] == "%DUALSYNC_PULL_SCHEDULE%"
        assert (t["runOnStartup"], t["useMonitor"]) == (False, True)


def test_the_schedule_setting_is_in_the_sample_and_six_fields():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert len(sample["DUALSYNC_PULL_SCHEDULE"].split()) == 6
    assert sample["DUALSYNC_PULL_SCHEDULE"] == get_runtime().settings.pull_schedule


def call(function_name: str, timer: azf_timer.TimerRequest):
    target = next(f for f in timer_functions.bp._function_builders
                  if f._function.get_function_name() == function_name)
    return target._function.get_user_function()(timer)


async def test_a_timer_call_pulls_both_sides_of_a_bidirectional_map(world: World, mocker):  # noqa: F811
    service = world.service()

    async def get_pull_service():
        return service

    mocker.patch.object(timer_functions, "get_pull_service", get_pull_service)
    spy = mocker.spy(service, "pull")

    await call("pull_customers", azf_timer.TimerRequest(past_due=False))
    assert spy.call_args.args == ("customers",)
    assert (await world.state.get_checkpoint(dataverse_checkpoint("customers"))) is not None
    assert (await world.state.get_checkpoint(finance_checkpoint("customers"))) is not None
    assert await world.notifications() == []  # first run: positions taken, nothing announced

    with world.dv_client() as c:
        r = c.post("accounts", json={"accountnumber": "A-1", "name": "Litware"})
        assert r.status_code == 204, r.text
        account = UUID(r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))
    world.fo.app.state.emulator.load_rows("CustomersV3", [
        {"dataAreaId": "uspm", "CustomerAccount": "C-5", "OrganizationName": "Fabrikam", "CustomerGroupId": "10",
         "SalesCurrencyCode": "USD", "PartyType": "Organization"}])

    await call("pull_customers", azf_timer.TimerRequest(past_due=True))
    notes = await world.notifications()
    assert {(n.source, n.record_id, n.key) for n in notes} == {
        (Side.DATAVERSE, account, None), (Side.FINANCE, None, '["USPM","C-5"]')}
    assert {n.map for n in notes} == {"customers"}
    assert PullMode.INCREMENTAL.value == (await world.state.get_checkpoint(dataverse_checkpoint("customers"))).data["mode"]
