"""Distributed initial sync in key ranges: a slice planned into ranges by a keys-only scan, the items
processed in any order giving the source state with every row read once, a killed item resumed."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import pytest

from shared.bulk.distributed import WorkItem, plan_items, process_work_item, range_filter, record_run
from shared.bulk.engine import InitialSync
from shared.bulk.reconcile import Reconciler
from shared.catalog.models import Side
from shared.transport.local import LocalBroker
from tests.bulk.conftest import COMPILED
from tests.bulk.test_initial_sync import keys_on
from tests.bulk.test_resume_reconcile_distributed import _service, worker_rows

WORKERS = 250


async def _drain(service: Any, ctx: Any, items: list[WorkItem], seed: int) -> list[dict[str, Any]]:
    """Record the run, then process every item in a shuffled order; a deferred item goes to the back of
    the line (its copy scheduled on the queue is left there: the test is the instance that takes it up)."""
    await record_run(ctx, items[0].run, items)
    todo = list(items)
    random.Random(seed).shuffle(todo)
    done: list[dict[str, Any]] = []
    rounds = 0
    while todo:
        rounds += 1
        assert rounds < 20 * len(items), "items keep deferring each other"
        item = todo.pop(0)
        result = await process_work_item(service, item.to_message().body, ctx=ctx)
        if result["status"] == "deferred":
            todo.append(item)
        else:
            done.append(result)
    return done


@pytest.fixture
async def service(bulk, tmp_path):
    ctx, _, _ = bulk
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_queue(ctx.settings.work_queue)
    yield await _service(ctx, broker)
    await broker.close()


def test_a_range_filter_uses_the_service_literal_and_leaves_open_ends_out():
    workers, actuals = COMPILED["workers"], COMPILED["actuals"]
    assert range_filter(workers, Side.FINANCE, None, None) is None
    assert range_filter(workers, Side.FINANCE, "O'Neil", None) == "PersonnelNumber ge 'O''Neil'"
    guid = "0000000a-0000-0000-0000-000000000001"
    assert range_filter(actuals, Side.DATAVERSE, None, guid) == f"msdyn_actualid lt {guid}"  # a bare GUID


async def test_a_big_slice_is_planned_into_key_ranges_that_together_read_every_row_once(bulk, service):
    ctx, dv, fo = bulk
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    fo.app.state.emulator.load_rows("Workers", worker_rows(WORKERS))

    items = await plan_items(ctx, ["workers"], "r1", range_rows=60)
    assert len(items) == 5 and [i.part for i in items] == [0, 1, 2, 3, 4]  # boundaries at rows 60, 120, 180, 240
    assert items[0].low is None and items[-1].high is None
    assert all(a.high == b.low for a, b in itertools.pairwise(items))  # contiguous: no gap, no overlap
    assert [i.low for i in items[1:]] == [f"W{n:07d}" for n in (60, 120, 180, 240)]
    assert len({i.checkpoint for i in items}) == 5  # each range under its own checkpoint

    results = await _drain(service, ctx, items, seed=11)
    assert sorted(r["read"] for r in results) == [10, 60, 60, 60, 60]  # every row read by exactly one range
    assert sum(r["written"] for r in results) == WORKERS and all(r["failed"] == 0 for r in results)
    keys = keys_on(Side.DATAVERSE, "workers", dv, fo)
    assert len(keys) == WORKERS and max(keys.values()) == 1
    assert set(keys) == set(keys_on(Side.FINANCE, "workers", dv, fo))


async def test_a_small_slice_stays_one_item(bulk):
    ctx, _, _ = bulk
    items = await plan_items(ctx, ["currencies"], "r2")  # default: 50,000 rows per range
    assert [(i.map, i.part, i.side_pass) for i in items] == [("currencies", None, None)]


async def test_company_slices_ranged_per_pass_in_any_order_give_the_local_result(bulk, service):
    """Actuals: Dataverse GUID keys in the service's own order, one slice per legal entity, two passes
    (Finance first, then Dataverse), parents in the same run; processed shuffled."""
    ctx, dv, fo = bulk  # 10-row pages: tasks come before their parent task across pages, and wait for it
    maps = ["currencies", "legal_entities", "customers", "workers", "projects", "project_tasks", "project_contracts",
            "project_contract_lines", "transaction_categories", "worker_resources", "actuals"]
    per_company = Counter(str(r["_msdyn_company_value"]) for r in dv.app.state.emulator.rows("msdyn_actuals"))
    assert max(per_company.values()) > 40, per_company  # enough actuals in a legal entity to range

    items = await plan_items(ctx, maps, "r3", range_rows=15)
    ranged = [i for i in items if i.map == "actuals" and i.part is not None]
    first, second = ([i for i in ranged if i.side_pass == p] for p in (0, 1))
    assert all((i.low, i.high) == (None, None) for i in first)  # the Finance pass is empty: one whole range
    assert max(Counter(i.company for i in second).values()) >= 3  # a legal entity in three ranges or more
    assert not [i for i in items if i.map == "project_tasks" and i.part is not None]  # self-referencing: whole

    results = await _drain(service, ctx, items, seed=5)
    assert all(r["failed"] == 0 for r in results), [r for r in results if r["failed"]]
    actuals = [r for r in results if r["map"] == "actuals"]
    source = sum(1 for r in dv.app.state.emulator.rows("msdyn_actuals") if not r.get("msdyn_skipsync"))
    assert sum(r["read"] for r in actuals) == source  # the ranges partition every slice
    distributed = keys_on(Side.FINANCE, "actuals", dv, fo)
    assert len(distributed) == source and max(distributed.values()) == 1
    drifts = await Reconciler(ctx).run(["actuals"])
    assert [d.map for d in drifts if d.drift] == []

    local = await InitialSync(ctx).run(maps)  # from scratch, locally: the same target rows
    assert local.failed == 0 and keys_on(Side.FINANCE, "actuals", dv, fo) == distributed


class Killed(Exception):
    """The instance stopped while the item ran."""


async def test_a_killed_range_item_resumes_from_its_checkpoint(bulk, service):
    ctx, dv, fo = bulk
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    fo.app.state.emulator.load_rows("Workers", worker_rows(WORKERS))
    items = await plan_items(ctx, ["workers"], "r4", range_rows=100)
    await record_run(ctx, "r4", items)
    item = items[1]  # rows 100..199: ten pages of ten
    assert (item.low, item.high) == ("W0000100", "W0000200")

    put_checkpoint = ctx.state.put_checkpoint
    calls = 0

    async def dies_on_the_fourth_page(name: str, data: dict[str, Any], **kw: Any) -> Any:
        nonlocal calls
        if name == item.checkpoint:
            calls += 1
            if calls == 4:
                raise Killed()
        return await put_checkpoint(name, data, **kw)

    ctx.state.put_checkpoint = dies_on_the_fourth_page
    with pytest.raises(Killed):
        await process_work_item(service, item.to_message().body, ctx=ctx)
    ctx.state.put_checkpoint = put_checkpoint
    cp = await ctx.state.get_checkpoint(item.checkpoint)
    assert cp is not None and cp.data["read"] == 30 and not cp.data["done"]

    again = await process_work_item(service, item.to_message().body, ctx=ctx)
    assert again["status"] == "done" and again["resumed"] and again["done"]
    assert again["read"] == 100 and again["pages"] == 10  # went on from page 4, every row of the range once
    keys = keys_on(Side.DATAVERSE, "workers", dv, fo)
    assert set(keys) == {f'["W{n:07d}"]' for n in range(100, 200)} and max(keys.values()) == 1


def test_the_cli_default_is_the_engine_default():
    from cli.commands import initial_sync
    from shared.bulk import distributed

    assert initial_sync.RANGE_ROWS == distributed.RANGE_ROWS
