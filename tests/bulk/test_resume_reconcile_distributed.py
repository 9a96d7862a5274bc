"""Kill-and-resume of `dualsync initial-sync` as a subprocess, reconcile (report and repair through the
normal pipeline), and the distributed work items against the local engine's result."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared.bulk import InitialSync
from shared.bulk.distributed import WorkItem, process_work_item, publish_work
from shared.bulk.engine import checkpoint_name
from shared.bulk.reconcile import Reconciler
from shared.catalog.models import Side
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.service import Delivery, SyncService
from shared.sync.sides import DataverseSide, FinanceSide
from shared.transport.local import LocalBroker, LocalBrokerTransport
from tests.bulk.conftest import COMPILED
from tests.bulk.test_initial_sync import dv_http, keys_on
from tests.conftest import EMULATOR_TOKEN

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3000


def cli_env(dv: Any, fo: Any, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}
    env.update({"DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url,
                "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": EMULATOR_TOKEN,
                "DUALSYNC_STATE_SQLITE_PATH": str(tmp / "state.sqlite"),
                "DUALSYNC_BROKER_PATH": str(tmp / "broker.sqlite"), "PYTHONPATH": str(ROOT), **extra})
    return env


def dualsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def worker_rows(n: int) -> list[dict[str, Any]]:
    return [{"PersonnelNumber": f"W{i:07d}", "Name": f"Worker {i}", "FirstName": "Pat", "LastName": f"Lee {i}",
             "PrimaryContactEmail": f"w{i}@contoso.example", "WorkerType": "Employee",
             "EmploymentLegalEntityId": "USPM", "EmploymentStartDate": "2023-12-02T09:00:00Z"} for i in range(n)]


async def _checkpoint(path: Path, name: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    store = SqliteStateStore(path)
    await store.open()
    try:
        cp = await store.get_checkpoint(name)
        return cp.data if cp else None
    finally:
        await store.close()


async def test_killed_half_way_then_resumed_equals_source_without_duplicates(emulators, tmp_path):
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    fo.app.state.emulator.load_rows("Workers", worker_rows(WORKERS))
    env = cli_env(dv, fo, tmp_path, DUALSYNC_PAGE_SIZE="25", DUALSYNC_BATCH_SIZE="5",
                  DUALSYNC_INITIAL_SYNC_CONCURRENCY="1")
    proc = subprocess.Popen(dualsync("initial-sync", "--map", "workers", "--json"), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state_path = tmp_path / "state.sqlite"
    deadline = time.monotonic() + 60
    progress: dict[str, Any] | None = None
    try:
        while time.monotonic() < deadline:
            progress = await _checkpoint(state_path, checkpoint_name("workers"))
            if progress and progress["read"] >= 300:
                break
            assert proc.poll() is None, proc.communicate()
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert progress is not None and not progress["done"], "killed after it finished: make the run longer"
    landed = dv.app.state.emulator.count("cdm_workers")
    assert 0 < landed < WORKERS

    resumed = subprocess.run(dualsync("initial-sync", "--map", "workers", "--resume", "--json"), env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)["maps"]["workers"]
    assert summary["resumed"] and summary["done"] and summary["failed"] == 0
    assert summary["read"] < 2 * WORKERS  # it went on from the checkpoint, not from the start
    keys = keys_on(Side.DATAVERSE, "workers", dv, fo)
    assert len(keys) == WORKERS and max(keys.values()) == 1  # equal to the source, no duplicates
    assert set(keys) == set(keys_on(Side.FINANCE, "workers", dv, fo))


def test_cli_settings_error_and_unknown_map(tmp_path, emulators):
    dv, fo = emulators
    env = cli_env(dv, fo, tmp_path)
    del env["DUALSYNC_DATAVERSE_URL"]
    r = subprocess.run(dualsync("initial-sync", "--json"), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "DUALSYNC_DATAVERSE_URL" in r.stderr
    r = subprocess.run(dualsync("reconcile", "--map", "nope"), env=cli_env(dv, fo, tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "nope" in r.stderr


async def _service(ctx: Any, broker: LocalBroker) -> SyncService:
    sides = {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED), Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}
    return SyncService(SyncHandler(COMPILED, sides, ctx.state), ctx.state, LocalBrokerTransport(broker),
                       ctx.settings.change_topic)


async def test_reconcile_finds_drift_and_fix_repairs_it_through_the_pipeline(bulk, tmp_path):
    ctx, dv, fo = bulk
    maps = ["currencies", "legal_entities", "customers"]
    assert (await InitialSync(ctx).run(maps)).failed == 0
    accounts = [r for r in fo.app.state.emulator.rows("CustomersV3")]
    missing, different = accounts[0], accounts[1]
    with dv_http(dv) as c:
        def account(number: str) -> dict[str, Any]:
            return c.get("accounts", params={"$filter": f"accountnumber eq '{number}'"}).json()["value"][0]
        assert c.delete(f"accounts({account(missing['CustomerAccount'])['accountid']})").status_code == 204
        changed = account(different["CustomerAccount"])
        assert c.patch(f"accounts({changed['accountid']})", json={"name": "Changed behind our back"}).status_code == 204
        r = c.post("accounts", json={"accountnumber": "ZZ-EXTRA", "name": "Only in Dataverse", "customertypecode": 3,
                                     "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USPM')"})
        assert r.status_code == 204, r.text

    [drift] = await Reconciler(ctx, examples=3).run(["customers"])
    assert (drift.missing, drift.extra, drift.different) == (1, 1, 1)
    assert drift.examples["missing"] == [f'["{missing["dataAreaId"].upper()}","{missing["CustomerAccount"]}"]']
    assert drift.examples["extra"] == ['["USPM","ZZ-EXTRA"]']
    assert drift.examples["different"][0]["fields"] == ["name"]  # field names, never values

    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_topic(ctx.settings.change_topic)
    await broker.create_subscription(ctx.settings.change_topic, "customers")
    service = await _service(ctx, broker)
    [fixed] = await Reconciler(ctx).run(["customers"], fix=True, transport=service.transport)
    assert fixed.fixed == 2
    sub = f"{ctx.settings.change_topic}/Subscriptions/customers"
    received = await broker.receive(sub, max_count=10)
    assert len(received) == 2
    for msg in received:
        note = json.loads(msg.body)
        assert note["origin"] == "reconcile" and note["source"] == "finance"
        await service.process("customers", Delivery(body=msg.body, message_id=msg.message_id))
        await broker.complete(msg)
    [after] = await Reconciler(ctx).run(["customers"])
    assert (after.missing, after.different, after.extra) == (0, 0, 1)  # the extra row is never deleted
    await broker.close()


async def test_distributed_work_items_give_the_local_result(bulk, tmp_path):
    ctx, dv, fo = bulk
    maps = ["currencies", "legal_entities", "customers", "projects", "project_contracts"]
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_queue(ctx.settings.work_queue)
    service = await _service(ctx, broker)

    published = await publish_work(service, maps)
    assert published["maps"]["currencies"] == 1  # a shared map: one item
    assert published["maps"]["customers"] == 3  # company-specific: one per legal entity
    assert published["items"] == sum(published["maps"].values())

    # a child taken before its parents are done is deferred (scheduled again), not written early
    early = WorkItem(published["run"], "projects", "uspm", maps)
    assert (await process_work_item(service, early.to_message().body, ctx=ctx))["status"] == "deferred"
    assert fo.app.state.emulator.count("ProjCDSProjects") == 0

    done = 0
    while True:
        batch = await broker.receive(ctx.settings.work_queue, max_count=5)
        if not batch:
            break
        for msg in batch:
            result = await process_work_item(service, msg.body, ctx=ctx)
            assert result["status"] == "done", result
            done += 1
            await broker.complete(msg)
    assert done == published["items"]
    # a redelivered item resumes from its done checkpoint: nothing written twice
    again = await process_work_item(service, WorkItem(published["run"], "customers", "uspm", maps).to_message().body,
                                    ctx=ctx)
    assert again["status"] == "done" and again["resumed"] and again["written"] > 0
    distributed = {n: keys_on(Side.FINANCE if n in ("projects", "project_contracts") else Side.DATAVERSE, n, dv, fo)
                   for n in maps}
    drifts = await Reconciler(ctx).run(maps)
    assert [d.map for d in drifts if d.drift] == []

    # the same maps synced locally from scratch give the same target rows
    local = await InitialSync(ctx).run(maps)
    assert local.failed == 0
    assert {n: keys_on(Side.FINANCE if n in ("projects", "project_contracts") else Side.DATAVERSE, n, dv, fo)
            for n in maps} == distributed
    await broker.close()
