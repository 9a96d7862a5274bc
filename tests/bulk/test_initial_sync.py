"""Initial sync against the real emulators with demo data: dependency order, equality with the source,
idempotence, lookups, a bad row kept in the error store, and the ledger the live path relies on."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from shared.bulk import InitialSync
from shared.bulk.engine import checkpoint_name
from shared.bulk.plan import master_sides, sync_order
from shared.bulk.reconcile import Reconciler
from shared.catalog.models import Side
from shared.mapping import key_to_string, row_hash
from shared.state.models import ErrorClassification
from shared.sync.handler import SyncHandler, ledger_key
from shared.sync.outcome import Skipped
from tests.bulk.conftest import COMPILED
from tests.conftest import EMULATOR_TOKEN

MAPS = ["currencies", "legal_entities", "workers", "transaction_categories", "customers", "projects",
        "project_contracts", "project_contract_lines", "expense_categories", "expenses"]
AUTH = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}


def dv_http(dv: Any) -> httpx.Client:
    return httpx.Client(base_url=dv.url + "/api/data/v9.2/", headers=AUTH)


def keys_on(side: Side, name: str, dv: Any, fo: Any) -> Counter[str]:
    """Integration keys of every row of a map's table on one side (duplicates counted)."""
    cm = COMPILED[name]
    m = cm.map
    if side is Side.FINANCE:
        return Counter(key_to_string(cm.integration_key(Side.FINANCE, r)) for r in fo.app.state.emulator.rows(
            m.finance.entity_set))
    expand = ",".join(cm.dataverse_expand()) or None
    rows: list[dict[str, Any]] = []
    with dv_http(dv) as c:
        url: str | None = m.dataverse.entity_set
        params: dict[str, Any] | None = {"$expand": expand} if expand else {}
        while url:
            body = c.get(url, params=params).json()
            rows += body["value"]
            url, params = body.get("@odata.nextLink"), None
    return Counter(key_to_string(cm.integration_key(Side.DATAVERSE, r)) for r in rows)


def test_plan_orders_dependencies_first_and_picks_masters():
    maps = {n: cm.map for n, cm in COMPILED.items()}
    order = [n for gen in sync_order(maps, MAPS) for n in gen]
    for name in MAPS:
        for dep in maps[name].depends_on:
            if dep in MAPS:
                assert order.index(dep) < order.index(name), (dep, name)
    assert master_sides(maps["resource_roles"]) == (Side.DATAVERSE,)  # initial_sync: dataverse
    assert master_sides(maps["projects"]) == (Side.DATAVERSE,)  # the only source
    assert master_sides(maps["customers"]) == (Side.FINANCE, Side.DATAVERSE)  # bidirectional, no master


async def test_full_sync_equals_source_and_second_run_is_idempotent(bulk):
    ctx, dv, fo = bulk
    pages: list[Any] = []
    summary = await InitialSync(ctx, progress=pages.append).run(MAPS)
    assert summary.failed == 0, summary.as_dict()
    by_map = {m.map: m for m in summary.maps}
    assert [m.map for m in summary.maps].index("legal_entities") < [m.map for m in summary.maps].index("customers")
    for name in MAPS:
        source = master_sides(COMPILED[name].map)[0]
        src, dst = keys_on(source, name, dv, fo), keys_on(source.other, name, dv, fo)
        assert src and set(src) <= set(dst), name  # every source row is on the target
        assert max(dst.values()) == 1, name  # and once
    # every field of every row: reconcile's comparison finds nothing
    drifts = await Reconciler(ctx).run(MAPS)
    assert [(d.map, d.missing, d.extra, d.different) for d in drifts if d.drift] == []
    assert sum(d.compared for d in drifts) >= sum(by_map[n].written for n in MAPS if n not in ("customers",))
    # progress: a report per page with running totals
    assert {p.map for p in pages} == set(MAPS)
    for name in MAPS:
        reports = [p for p in pages if p.map == name]
        assert [p.read for p in reports] == sorted(p.read for p in reports)
        assert reports[-1].done and reports[-1].read == by_map[name].read
    assert len([p for p in pages if p.map == "expenses"]) > 1  # 10-row pages: several reports

    # lookups resolved to the right rows: each expense points at the project with its number
    with dv_http(dv) as c:
        expenses = c.get("msdyn_expenses", params={"$expand": "msdyn_project($select=msdyn_projectnumber)"}).json()
    fo_expenses = {r["ExpenseNumber"]: r for r in fo.app.state.emulator.rows("ProjExpenseExports")}
    assert expenses["value"]
    for e in expenses["value"]:
        assert e["msdyn_project"]["msdyn_projectnumber"] == fo_expenses[e["msdyn_externalexpenseid"]]["ProjectId"]

    # the ledger is the live handler's: key|to-side with the mapped row's hash -> live sync skips
    cm = COMPILED["projects"]
    with dv_http(dv) as c:
        project = c.get("msdyn_projects", params={"$top": "1", "$select": "msdyn_projectid"}).json()["value"][0]
    from shared.sync.sides import DataverseSide, FinanceSide
    handler = SyncHandler(COMPILED, {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED),
                                     Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}, ctx.state)
    outcome = await handler.handle("projects", Side.DATAVERSE, record_id=project["msdyn_projectid"])
    assert isinstance(outcome, Skipped) and outcome.reason == "unchanged"
    entry = await ctx.state.get_ledger("projects", ledger_key(outcome.key, Side.FINANCE))
    assert entry is not None and entry.source_side == "dataverse" and entry.source_version > 0
    assert cm is COMPILED["projects"] and entry.target_hash and len(entry.target_hash) == len(row_hash({}))

    before = {n: keys_on(master_sides(COMPILED[n].map)[0].other, n, dv, fo) for n in MAPS}
    again = await InitialSync(ctx).run(MAPS)
    assert again.failed == 0
    assert {m.map: m.written for m in again.maps} == {m.map: m.written for m in summary.maps}
    after = {n: keys_on(master_sides(COMPILED[n].map)[0].other, n, dv, fo) for n in MAPS}
    assert after == before  # no duplicates, nothing new
    cp = await ctx.state.get_checkpoint(checkpoint_name("expenses"))
    assert cp is not None and cp.data["done"] and cp.data["read"] == by_map["expenses"].read


async def test_bad_row_lands_in_the_error_store_and_the_rest_is_written(bulk):
    ctx, dv, fo = bulk
    with dv_http(dv) as c:
        projects = c.get("msdyn_projects", params={"$select": "msdyn_projectid,msdyn_projectnumber"}).json()["value"]
        bad = projects[0]
        # Finance's ProjectName holds 60 characters; Dataverse's subject 200
        r = c.patch(f"msdyn_projects({bad['msdyn_projectid']})", json={"msdyn_subject": "x" * 61})
        assert r.status_code == 204, r.text
    summary = await InitialSync(ctx).run(["currencies", "legal_entities", "customers", "projects"])
    projects_summary = next(m for m in summary.maps if m.map == "projects")
    assert projects_summary.failed == 1 and projects_summary.written == len(projects) - 1
    assert summary.failed == 1
    [error] = await ctx.state.list_errors("projects")
    assert error.classification == ErrorClassification.VALIDATION.value
    assert bad["msdyn_projectnumber"] in error.key
    assert error.payload["map"] == "projects" and error.payload["source"] == "dataverse"  # replayable
    assert error.payload["origin"] == "initial-sync"
    assert "x" * 61 in error.description  # the source row, scrubbed of secrets, for the operator
    numbers = {r["ProjectID"] for r in fo.app.state.emulator.rows("ProjCDSProjects")}
    assert numbers == {p["msdyn_projectnumber"] for p in projects} - {bad["msdyn_projectnumber"]}


async def test_mapping_failure_and_missing_parent_are_kept(bulk):
    ctx, dv, fo = bulk
    # expenses point at projects and tasks that were never synced to Dataverse: parents missing
    summary = await InitialSync(ctx).run(["currencies", "legal_entities", "expenses"])
    expenses = next(m for m in summary.maps if m.map == "expenses")
    assert expenses.written == 0 and expenses.failed == expenses.read > 0
    errors = await ctx.state.list_errors("expenses", limit=500)
    assert len(errors) == expenses.read
    assert {e.classification for e in errors} == {ErrorClassification.DEPENDENCY_MISSING.value}
    assert all("projects" in e.reason or "expense_categories" in e.reason or "project_tasks" in e.reason
               for e in errors)


async def test_ledger_of_a_batch_is_written_at_once(bulk, mocker):
    """One put_ledgers per sent batch, holding exactly the batch's written rows (not the failed one)."""
    ctx, dv, fo = bulk
    with dv_http(dv) as c:
        bad = c.get("msdyn_projects", params={"$select": "msdyn_projectid,msdyn_projectnumber", "$top": "1"}).json()
        bad = bad["value"][0]
        assert c.patch(f"msdyn_projects({bad['msdyn_projectid']})", json={"msdyn_subject": "x" * 61}).status_code == 204
    bulk_write = mocker.spy(ctx.state, "put_ledgers")
    one_write = mocker.spy(ctx.state, "put_ledger")
    summary = await InitialSync(ctx).run(["currencies", "legal_entities", "customers", "projects"])
    one_write.assert_not_called()
    calls = [call.args[0] for call in bulk_write.call_args_list]
    assert calls and all(0 < len(entries) <= 4 for entries in calls)  # batch_size is 4
    assert all(len({e.map for e in entries}) == 1 for entries in calls)
    written = {m.map: m.written for m in summary.maps}
    for name in written:
        keys = [e.key for entries in calls for e in entries if e.map == name]
        assert len(keys) == len(set(keys)) == written[name], name
    project_keys = [e.key for entries in calls for e in entries if e.map == "projects"]
    assert not [k for k in project_keys if bad["msdyn_projectnumber"] in k]
    assert sum(1 for entries in calls if entries[0].map == "projects") < len(project_keys)  # batched, not per row
    ledger = [e async for e in ctx.state.iter_ledger("projects")]
    assert sorted(e.key for e in ledger) == sorted(project_keys)
