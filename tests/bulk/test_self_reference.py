"""Initial sync of a map that refers to itself (project tasks under a parent task) when children come on
pages before their parents: the children wait (their keys deferred) and are written once their parents
are, in as many rounds as the hierarchy needs; a child whose parent never comes is kept in the error
store naming the parent; a run killed while children wait resumes to the same result."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.bulk import InitialSync
from shared.bulk.distributed import plan_items, process_work_item, record_run
from shared.bulk.engine import checkpoint_name
from shared.bulk.waiting import WaitingKeys, read_again
from shared.catalog.models import Side
from shared.mapping import key_to_string
from shared.state.models import ErrorClassification
from tests.bulk.conftest import COMPILED
from tests.bulk.test_initial_sync import dv_http
from tests.bulk.test_key_ranges import service  # noqa: F401  (fixture)
from tests.bulk.test_resume_reconcile_distributed import worker_rows

PARENTS = ["currencies", "legal_entities", "customers", "workers", "projects"]
ROOT = "00000000-0000-0000-0000-0000000000ff"
MIDDLE = 12  # tasks under the root
LEAVES = 2  # tasks under each middle task


def task_id(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012x}"


def tree(project: dict[str, Any]) -> dict[str, str | None]:
    """A root, MIDDLE tasks under it and LEAVES under each: task id -> parent id. Ids (and insertion
    order) put the leaves first, then the middle tasks, then the root: every child before its parent."""
    parents: dict[str, str | None] = {}
    for m in range(MIDDLE):
        for leaf in range(LEAVES):
            parents[task_id(1 + m * LEAVES + leaf)] = task_id(0x80 + m)
    for m in range(MIDDLE):
        parents[task_id(0x80 + m)] = ROOT
    parents[ROOT] = None
    return parents


def load_tasks(dv: Any, project: dict[str, Any], parents: dict[str, str | None], unnamed: str = "") -> None:
    rows = []
    for n, (tid, parent) in enumerate(parents.items()):
        row = {"msdyn_projecttaskid": tid, "msdyn_subject": None if tid == unnamed else f"Task {n}",
               "msdyn_wbsid": f"9.{n}",
               "_msdyn_project_value": project["msdyn_projectid"],
               "_msdyn_company_value": project["_msdyn_company_value"]}
        if parent:
            row["_msdyn_parenttask_value"] = parent
        rows.append(row)
    dv.app.state.emulator.load_rows("msdyn_projecttasks", rows)


def a_project(dv: Any) -> dict[str, Any]:
    with dv_http(dv) as c:
        return c.get("msdyn_projects", params={
            "$select": "msdyn_projectid,msdyn_projectnumber,_msdyn_company_value", "$top": "1"}).json()["value"][0]


def finance_tasks(fo: Any) -> dict[str, dict[str, Any]]:
    return {str(r["Task"]).lower(): r for r in fo.app.state.emulator.rows("ProjCDSTasks")}


def assert_tree_on_finance(fo: Any, project: dict[str, Any], parents: dict[str, str | None]) -> None:
    tasks = finance_tasks(fo)
    for tid, parent in parents.items():
        assert tid in tasks, tid
        assert (str(tasks[tid]["ParentTask"]).lower() if tasks[tid].get("ParentTask") else None) == parent, tid
        assert tasks[tid]["ProjectId"] == project["msdyn_projectnumber"]


async def test_children_on_pages_before_their_parents_wait_and_are_written(bulk, mocker):
    ctx, dv, fo = bulk
    project = a_project(dv)
    parents = tree(project)
    load_tasks(dv, project, parents)
    assert (await InitialSync(ctx).run(PARENTS)).failed == 0
    source = dv.app.state.emulator.count("msdyn_projecttasks")

    stored = mocker.spy(WaitingKeys, "write")
    [tasks] = (await InitialSync(ctx).run(["project_tasks"])).maps
    assert tasks.failed == 0, await ctx.state.list_errors("project_tasks")
    # leaves wait for the pages, then for the middle tasks' round: two rounds of waiting keys
    assert {call.args[2] for call in stored.call_args_list} == {0, 1}
    assert all(len(call.args[4]) <= 10 for call in stored.call_args_list)  # keys only, a page's worth at most
    names = WaitingKeys(ctx, checkpoint_name("project_tasks"))
    assert [await ctx.state.get_checkpoint(names.record_name(0, r, 0)) for r in (0, 1)] == [None, None]  # dropped
    assert tasks.written == tasks.read == source  # each row read once by the pages, written once
    assert tasks.pages > source // 10  # 10-row pages: the hierarchy spans many of them
    assert await ctx.state.list_errors("project_tasks") == []
    assert_tree_on_finance(fo, project, parents)
    assert len(list(fo.app.state.emulator.rows("ProjCDSTasks"))) == source  # no duplicates
    cp = await ctx.state.get_checkpoint(checkpoint_name("project_tasks"))
    assert cp is not None and cp.data["done"] and cp.data["written"] == source

    again = await InitialSync(ctx).run(["project_tasks"])  # idempotent: the same rows, nothing new
    assert again.failed == 0 and again.maps[0].written == source
    assert len(list(fo.app.state.emulator.rows("ProjCDSTasks"))) == source


async def test_a_child_whose_parent_never_comes_is_kept_naming_the_parent(bulk):
    """A parent that cannot be written (Finance requires the task name) leaves its child and grandchild
    waiting; once a round writes nothing, they are kept in the error store, each naming its parent."""
    ctx, dv, fo = bulk
    project = a_project(dv)
    parents = tree(project)
    grandchild, child, unnamed = task_id(0x6F), task_id(0x70), task_id(0x71)
    with_bad = {grandchild: child, child: unnamed, **parents, unnamed: ROOT}  # children first, as before
    load_tasks(dv, project, with_bad, unnamed=unnamed)
    assert (await InitialSync(ctx).run(PARENTS)).failed == 0

    [tasks] = (await InitialSync(ctx).run(["project_tasks"])).maps
    assert tasks.failed == 3 and tasks.written == tasks.read - 3
    errors = await ctx.state.list_errors("project_tasks")
    by_task = {tid: [e for e in errors if tid in e.key] for tid in (grandchild, child, unnamed)}
    assert all(len(found) == 1 for found in by_task.values()) and len(errors) == 3, errors
    [[g], [c], [u]] = by_task.values()
    assert u.classification == ErrorClassification.MAPPING.value, u
    assert c.classification == g.classification == ErrorClassification.DEPENDENCY_MISSING.value
    assert "project_tasks" in c.reason and unnamed in c.reason  # the reason names the missing parent
    assert "project_tasks" in g.reason and child in g.reason
    assert c.payload["map"] == "project_tasks" and c.payload["origin"] == "initial-sync"  # replayable
    on_finance = finance_tasks(fo)
    assert not {grandchild, child, unnamed} & set(on_finance)
    assert_tree_on_finance(fo, project, parents)


class Killed(Exception):
    """The process stopped."""


@pytest.mark.parametrize("killed_in", ["pages", "rounds"])
async def test_a_run_killed_while_children_wait_resumes_to_the_same_result(bulk, killed_in):
    """Killed on the third page, or on the first retry of waiting children (after the pages); resumed."""
    ctx, dv, fo = bulk
    project = a_project(dv)
    parents = tree(project)
    load_tasks(dv, project, parents)
    assert (await InitialSync(ctx).run(PARENTS)).failed == 0
    source = dv.app.state.emulator.count("msdyn_projecttasks")
    pages = -(-source // 10)

    name = checkpoint_name("project_tasks")
    put_checkpoint = ctx.state.put_checkpoint
    calls = 0

    async def dies(cp_name: str, data: dict[str, Any], **kw: Any) -> Any:
        nonlocal calls
        if cp_name == name:
            calls += 1
            if calls == (3 if killed_in == "pages" else pages + 1):
                raise Killed()
        return await put_checkpoint(cp_name, data, **kw)

    ctx.state.put_checkpoint = dies  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await InitialSync(ctx).run(["project_tasks"])
    ctx.state.put_checkpoint = put_checkpoint  # type: ignore[method-assign]
    cp = await ctx.state.get_checkpoint(name)
    assert cp is not None and not cp.data["done"]
    if killed_in == "pages":
        assert cp.data["next"] and cp.data["pages"] == 2
    else:  # the pages are done and the children wait for round 1
        assert cp.data["next"] is None and cp.data["waiting"]["round"] == 1 and cp.data["waiting"]["read"] == 0

    [tasks] = (await InitialSync(ctx).run(["project_tasks"], resume=True)).maps
    assert tasks.resumed and tasks.failed == 0, await ctx.state.list_errors("project_tasks")
    assert tasks.read == source and tasks.written >= source  # a page cut short is written again
    assert await ctx.state.list_errors("project_tasks") == []
    assert_tree_on_finance(fo, project, parents)
    assert len(list(fo.app.state.emulator.rows("ProjCDSTasks"))) == source


async def test_a_distributed_slice_of_tasks_waits_for_parents_too(bulk, service):  # noqa: F811
    ctx, dv, fo = bulk
    project = a_project(dv)
    parents = tree(project)
    load_tasks(dv, project, parents)
    assert (await InitialSync(ctx).run(PARENTS)).failed == 0

    items = await plan_items(ctx, ["project_tasks"], "t1", range_rows=15)
    assert items and all(i.part is None for i in items)  # self-referencing: one item per legal entity
    await record_run(ctx, "t1", items)
    results = [await process_work_item(service, item.to_message().body, ctx=ctx) for item in items]
    assert all(r["status"] == "done" and r["failed"] == 0 for r in results), results
    assert await ctx.state.list_errors("project_tasks") == []
    assert_tree_on_finance(fo, project, parents)
    assert len(list(fo.app.state.emulator.rows("ProjCDSTasks"))) == dv.app.state.emulator.count("msdyn_projecttasks")


async def test_waiting_keys_are_stored_in_records_under_the_table_store_limit(bulk):
    ctx, _, _ = bulk
    keys = [str(uuid.UUID(int=n)) for n in range(2000)]
    store = WaitingKeys(ctx, "initial-sync:project_tasks@t2")
    records = await store.write(0, 1, 3, keys)
    assert records >= 3  # 2,000 GUIDs do not fit one record
    back: list[str] = []
    for seq in range(3, 3 + records):
        cp = await ctx.state.get_checkpoint(store.record_name(0, 1, seq))
        assert cp is not None and len(json.dumps(cp.data)) < 30_000
        back += await store.read(0, 1, seq)
    assert back == keys
    assert await store.read(0, 1, 3 + records) == []


async def test_waiting_rows_are_read_again_by_key_on_either_side(bulk):
    """Finance by integration key (quotes doubled), Dataverse by primary id; rows gone are left out."""
    ctx, dv, fo = bulk
    fo.app.state.emulator.load_rows("Workers", [
        {**worker_rows(1)[0], "PersonnelNumber": number} for number in ("W'1", "W2", "W3")])
    workers = COMPILED["workers"]
    keys = [key_to_string(("W'1",)), key_to_string(("W3",)), key_to_string(("NOPE",))]
    rows = [r async for page in read_again(ctx, workers, Side.FINANCE, keys, page_size=10) for r in page]
    assert sorted(r["PersonnelNumber"] for r in rows) == ["W'1", "W3"]
    assert all("ModifiedDateTime" in r for r in rows)  # the pages' own columns: the version is there

    project = a_project(dv)
    load_tasks(dv, project, {task_id(1): None, task_id(2): task_id(1)})
    tasks = COMPILED["project_tasks"]
    ids = [task_id(2), task_id(3)] + [task_id(1)] * 30  # more than one query's worth of keys
    rows = [r async for page in read_again(ctx, tasks, Side.DATAVERSE, ids, page_size=10) for r in page]
    assert sorted({r["msdyn_projecttaskid"] for r in rows}) == [task_id(1), task_id(2)]
    child = next(r for r in rows if r["msdyn_projecttaskid"] == task_id(2))
    assert tasks.to_side(Side.FINANCE)(child)["ParentTask"] == task_id(1)  # expanded like the pages' rows
