"""Initial sync benchmark: the engine end to end vs a naive writer vs the raw floor of the same emulators.

Directions, each in one run against real HTTP emulators:
- ``dataverse_to_finance``: ``resource_roles`` (``bookableresourcecategories`` -> ``ProjCDSResourceRoles``);
- ``finance_to_dataverse``: ``workers`` (``Workers`` -> ``cdm_workers``).
(The issue names actuals; the Dataverse emulator has no company column on ``msdyn_actuals`` yet, so
actuals cannot map there; these maps have the same read-map-write path without that gap.)

Figures per direction: ``*_rows_per_s`` (read, map, bulk lookups, batched concurrent writes, ledger,
checkpoints); ``*_naive_rows_per_s`` (the live handler, one read and one upsert per row, sequential,
on a sample); ``*_raw_floor_rows_per_s`` (a bare ``httpx`` client reads the same pages and posts
pre-built ``$batch`` bodies of the already-mapped rows with the same concurrency: no mapping,
ledger or bookkeeping). ``rss_mb_<n>``: peak resident memory of a ``dualsync initial-sync``
subprocess syncing ``n`` workers (emulators stay in this process), for flat memory.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox import dataverse, finance
from shared.bulk import BulkContext, InitialSync
from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.connectors import batch as odata_batch
from shared.connectors.http import registry
from shared.mapping import compile_catalog
from shared.settings import DEFAULT_MAPS_DIR, load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.sides import DataverseSide, FinanceSide

TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parents[1]
COMPILED = compile_catalog(load_catalog(DEFAULT_MAPS_DIR))
BATCH, CONCURRENCY, PAGE = 100, 4, 5000


def roles(n: int) -> list[dict[str, Any]]:
    return [{"name": f"R{i:07d}", "description": f"Role {i}"} for i in range(n)]


def workers(n: int) -> list[dict[str, Any]]:
    return [{"PersonnelNumber": f"W{i:08d}", "Name": f"Worker {i}", "FirstName": "Pat", "LastName": f"Lee {i}",
             "PrimaryContactEmail": f"w{i}@contoso.example", "WorkerType": "Employee",
             "EmploymentLegalEntityId": "USPM", "EmploymentStartDate": "2023-12-02T09:00:00Z"} for i in range(n)]


def _load(emu: Any, entity_set: str, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 20_000):
        emu.load_rows(entity_set, rows[i:i + 20_000])


async def raw_floor(source: Side, dv: Any, fo: Any, name: str) -> float:
    """Seconds for a bare client to read every source page and post the mapped rows as $batch."""
    cm = COMPILED[name]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "OData-Version": "4.0"}
    src_root = f"{dv.url}/api/data/v9.2/" if source is Side.DATAVERSE else f"{fo.url}/data/"
    dst_root = f"{fo.url}/data/" if source is Side.DATAVERSE else f"{dv.url}/api/data/v9.2/"
    first = (f"{cm.map.dataverse.entity_set}?$select={','.join(cm.dataverse_select())}" if source is Side.DATAVERSE
             else f"{cm.map.finance.entity_set}?cross-company=true")
    # what the target should receive, built before the clock starts
    async with httpx.AsyncClient(timeout=120) as c:
        rows, url = [], src_root + first
        while url:
            body = (await c.get(url, headers={**headers, "Prefer": f"odata.maxpagesize={PAGE}"})).json()
            rows += body["value"]
            url = body.get("@odata.nextLink")
    mapped = [cm.to_side(source.other)(r) for r in rows]
    if source is Side.DATAVERSE:
        parts = [odata_batch.Part("POST", f"{dst_root}{cm.map.finance.entity_set}", m) for m in mapped]
    else:
        parts = [odata_batch.Part("PATCH", f"{dst_root}{cm.map.dataverse.entity_set}(cdm_workernumber='{m['cdm_workernumber']}')",
                                  m) for m in mapped]
    bodies = [odata_batch.build([parts[i:i + BATCH]], atomic=False) for i in range(0, len(parts), BATCH)]
    limits = httpx.Limits(max_connections=CONCURRENCY + 1)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        started = time.perf_counter()
        url = src_root + first
        while url:  # the read, as the engine does it
            body = (await c.get(url, headers={**headers, "Prefer": f"odata.maxpagesize={PAGE}"})).json()
            url = body.get("@odata.nextLink")
        queue = list(reversed(bodies))

        async def worker() -> None:
            while queue:
                ctype, payload = queue.pop()
                r = await c.post(dst_root + "$batch", content=payload,
                                 headers={**headers, "Content-Type": ctype, "Prefer": "odata.continue-on-error"})
                if r.status_code != 200:
                    raise RuntimeError(f"raw floor batch answered {r.status_code}")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def direction(dv: Any, fo: Any, source: Side, n: int, sample: int, tmp: Path) -> dict[str, float]:
    name = "resource_roles" if source is Side.DATAVERSE else "workers"
    tag = "dataverse_to_finance" if source is Side.DATAVERSE else "finance_to_dataverse"
    dv_emu, fo_emu = dv.app.state.emulator, fo.app.state.emulator
    target_set = COMPILED[name].map.finance.entity_set if source is Side.DATAVERSE else "cdm_workers"

    def reset() -> None:
        dv_emu.reset()
        fo_emu.reset()
        if source is Side.DATAVERSE:
            _load(dv_emu, "bookableresourcecategories", roles(n))
        else:
            _load(fo_emu, "Workers", workers(n))

    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token", static_token=TOKEN,
                             batch_size=BATCH, initial_sync_concurrency=CONCURRENCY, page_size=PAGE)
    reset()
    floor = await raw_floor(source, dv, fo, name)
    target = fo_emu if source is Side.DATAVERSE else dv_emu
    assert target.count(target_set) == n, "raw floor rows missing"

    reset()
    state = SqliteStateStore(tmp / f"{tag}.sqlite")
    await state.open()
    ctx = BulkContext.from_settings(settings, COMPILED, state)
    started = time.perf_counter()
    summary = await InitialSync(ctx).run([name])
    engine = time.perf_counter() - started
    assert target.count(target_set) == n and summary.failed == 0, summary.as_dict()

    reset()
    handler = SyncHandler(COMPILED, {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED),
                                     Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}, state)
    keys = ([f'["R{i:07d}"]' for i in range(sample)] if source is Side.DATAVERSE
            else [f'["W{i:08d}"]' for i in range(sample)])
    for k in keys:  # reset the ledger so the naive pass writes
        await state.delete_ledger(name, f"{k}|to-{source.other.value}")
    started = time.perf_counter()
    for k in keys:
        await handler.handle(name, source, key=k)
    naive = time.perf_counter() - started
    await state.close()
    await registry.aclose()
    return {f"{tag}_rows_per_s": n / engine, f"{tag}_naive_rows_per_s": sample / naive,
            f"{tag}_raw_floor_rows_per_s": n / floor, f"{tag}_failed_rows": float(summary.failed)}


def peak_rss_mb(dv: Any, fo: Any, n: int, tmp: Path) -> float:
    """Peak RSS of a `dualsync initial-sync --map workers` subprocess syncing ``n`` workers."""
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    _load(fo.app.state.emulator, "Workers", workers(n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}
    env.update({"DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url, "DUALSYNC_AUTH_MODE": "static_token",
                "DUALSYNC_STATIC_TOKEN": TOKEN, "DUALSYNC_STATE_SQLITE_PATH": str(tmp / f"rss{n}.sqlite"),
                "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "cli", "initial-sync", "--map", "workers", "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"initial-sync of {n} workers exited {proc.returncode}")
    if dv.app.state.emulator.count("cdm_workers") != n:
        raise RuntimeError("the memory run did not write every row")
    return usage.ru_maxrss / 1024  # KiB on Linux


async def _run(quick: bool) -> dict[str, Any]:
    n = 5_000 if quick else 100_000
    sample = 100 if quick else 500
    small, large = (2_000, 20_000) if quick else (10_000, 1_000_000)
    dv, fo = dataverse.start(port=0, token=TOKEN), finance.start(port=0, token=TOKEN)
    figures: dict[str, Any] = {"rows": n, "naive_sample_rows": sample, "batch_size": BATCH,
                               "concurrency": CONCURRENCY, "page_size": PAGE}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for source in (Side.DATAVERSE, Side.FINANCE):
                figures.update(await direction(dv, fo, source, n, sample, Path(tmp)))
            figures[f"rss_mb_{small // 1000}k"] = await asyncio.to_thread(peak_rss_mb, dv, fo, small, Path(tmp))
            label = f"{large // 1_000_000}m" if large >= 1_000_000 else f"{large // 1000}k"
            figures[f"rss_mb_{label}"] = await asyncio.to_thread(peak_rss_mb, dv, fo, large, Path(tmp))
    finally:
        dv.stop()
        fo.stop()
    ratios: dict[str, float] = {}
    for tag in ("dataverse_to_finance", "finance_to_dataverse"):
        ratios[f"{tag}_vs_raw_floor"] = figures[f"{tag}_rows_per_s"] / figures[f"{tag}_raw_floor_rows_per_s"]
        ratios[f"{tag}_vs_naive"] = figures[f"{tag}_rows_per_s"] / figures[f"{tag}_naive_rows_per_s"]
    ratios["vs_raw_floor"] = min(ratios["dataverse_to_finance_vs_raw_floor"], ratios["finance_to_dataverse_vs_raw_floor"])
    ratios["vs_naive"] = min(ratios["dataverse_to_finance_vs_naive"], ratios["finance_to_dataverse_vs_naive"])
    rss = [v for k, v in figures.items() if k.startswith("rss_mb_")]
    figures["rss_growth_mb"] = max(rss) - min(rss)
    return {
        "bench": "initial_sync",
        "figures": {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "goals": {"vs_raw_floor": ">= 0.7", "rss_growth_mb": "<= 100"},
    }


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(quick=True), indent=2))
