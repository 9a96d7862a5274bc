"""Initial sync benchmark: the engine end to end vs a naive writer vs the raw floor of the same emulators.

Directions, each in one run against real HTTP emulators:
- ``dataverse_to_finance``: ``actuals`` (``msdyn_actuals`` -> ``ProjCDSActualsImports``), as the issue
  asks: demo Project Operations data is loaded and its parents (projects, tasks, contracts, lines,
  categories, resources, currencies, legal entities) synced first, untimed; then the demo actuals are
  cloned to ``rows`` actuals, whose seven lookups the engine resolves in bulk per page;
- ``finance_to_dataverse``: ``workers`` (``Workers`` -> ``cdm_workers``).

Figures per direction: ``*_rows_per_s`` (read, map, bulk lookups, batched concurrent writes, ledger,
checkpoints); ``*_naive_rows_per_s`` (the live handler, one read and one upsert per row, sequential,
on a sample); ``*_raw_floor_rows_per_s`` (a bare ``httpx`` client reads the same pages and posts
pre-built ``$batch`` bodies of the already-mapped rows with the same concurrency: no mapping,
ledger or bookkeeping). ``rss_mb_<n>``: peak resident memory of a ``dualsync initial-sync``
subprocess syncing ``n`` workers (its own ``VmHWM``; the emulators stay in this process and are not
counted), for flat memory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
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
ACTUALS = "actuals"
DEMO_ROWS, DEMO_SEED = 600, 3  # the demo world the actuals point into


def workers(n: int) -> list[dict[str, Any]]:
    return [{"PersonnelNumber": f"W{i:08d}", "Name": f"Worker {i}", "FirstName": "Pat", "LastName": f"Lee {i}",
             "PrimaryContactEmail": f"w{i}@contoso.example", "WorkerType": "Employee",
             "EmploymentLegalEntityId": "USPM", "EmploymentStartDate": "2023-12-02T09:00:00Z"} for i in range(n)]


def _load(emu: Any, entity_set: str, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 20_000):
        emu.load_rows(entity_set, rows[i:i + 20_000])


def _actuals_world(dv: Any, fo: Any, n: int) -> None:
    """Demo data on both sides, then ``n`` actuals on Dataverse cloned from the demo's."""
    from sandbox.demo import load

    dv_emu, fo_emu = dv.app.state.emulator, fo.app.state.emulator
    dv_emu.reset()
    fo_emu.reset()
    load(dv_emu, fo_emu, rows=DEMO_ROWS, seed=DEMO_SEED)
    templates = list(dv_emu.rows("msdyn_actuals"))
    extra = n - len(templates)
    if extra < 0:
        raise ValueError(f"the demo world already holds {len(templates)} actuals; ask for at least that many")
    clones = ({**templates[i % len(templates)], "msdyn_actualid": str(uuid.UUID(int=i + 1))} for i in range(extra))
    for chunk in iter(lambda: list(itertools.islice(clones, 20_000)), []):
        dv_emu.load_rows("msdyn_actuals", chunk)


async def _sync_parents(settings: Any, tmp: Path, name: str) -> SqliteStateStore:
    """The actuals' parent maps synced (untimed) into a fresh state store, which the timed run then uses."""
    catalog = {n: cm.map for n, cm in COMPILED.items()}
    parents = _ancestors(catalog, name)
    state = SqliteStateStore(tmp / f"{name}-{time.monotonic_ns()}.sqlite")
    await state.open()
    summary = await InitialSync(BulkContext.from_settings(settings, COMPILED, state)).run(sorted(parents))
    if summary.failed:
        raise RuntimeError(f"parents of {name} did not sync: {summary.as_dict()}")
    return state


def _ancestors(catalog: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [d for d in catalog[name].depends_on if d != name]
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo += [d for d in catalog[dep].depends_on if d != dep]
    return seen


async def raw_floor(source: Side, dv: Any, fo: Any, name: str, mapped: list[dict[str, Any]] | None = None) -> float:
    """Seconds for a bare client to read every source page and post the mapped rows as $batch.

    ``mapped``: the target rows, when the mapping needs more than the source row (lookups resolved by
    the engine); otherwise mapped here from the rows read, before the clock starts."""
    cm = COMPILED[name]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "OData-Version": "4.0"}
    src_root = f"{dv.url}/api/data/v9.2/" if source is Side.DATAVERSE else f"{fo.url}/data/"
    dst_root = f"{fo.url}/data/" if source is Side.DATAVERSE else f"{dv.url}/api/data/v9.2/"
    first = (f"{cm.map.dataverse.entity_set}?$select={','.join(cm.dataverse_select())}" if source is Side.DATAVERSE
             else f"{cm.map.finance.entity_set}?cross-company=true")
    if mapped is None:  # what the target should receive, built before the clock starts
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
                if b" 201 " not in r.content and b" 204 " not in r.content:
                    raise RuntimeError("raw floor batch wrote nothing")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def dataverse_to_finance(dv: Any, fo: Any, n: int, sample: int, tmp: Path) -> dict[str, Any]:
    """Actuals: engine, raw floor (posting the rows the engine wrote), naive handler on a sample."""
    tag, cm = "dataverse_to_finance", COMPILED[ACTUALS]
    fo_emu, target_set = fo.app.state.emulator, cm.map.finance.entity_set
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token", static_token=TOKEN,
                             batch_size=BATCH, initial_sync_concurrency=CONCURRENCY, page_size=PAGE)

    _actuals_world(dv, fo, n)
    state = await _sync_parents(settings, tmp, ACTUALS)
    ctx = BulkContext.from_settings(settings, COMPILED, state)
    started = time.perf_counter()
    summary = await InitialSync(ctx).run([ACTUALS])
    engine = time.perf_counter() - started
    assert fo_emu.count(target_set) == n and summary.failed == 0, summary.as_dict()
    fields = {f.finance for f in cm.map.fields if f.finance} | {"dataAreaId"}
    written = [{k: v for k, v in r.items() if k in fields} for r in fo_emu.rows(target_set)]
    await state.close()

    _actuals_world(dv, fo, n)
    await (await _sync_parents(settings, tmp, ACTUALS)).close()
    floor = await raw_floor(Side.DATAVERSE, dv, fo, ACTUALS, written)
    assert fo_emu.count(target_set) == n, "raw floor rows missing"

    _actuals_world(dv, fo, n)
    state = await _sync_parents(settings, tmp, ACTUALS)
    handler = SyncHandler(COMPILED, {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED),
                                     Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}, state)
    ids = [r["msdyn_actualid"] for r in itertools.islice(dv.app.state.emulator.rows("msdyn_actuals"), sample)]
    started = time.perf_counter()
    for record_id in ids:
        outcome = await handler.handle(ACTUALS, Side.DATAVERSE, record_id=record_id)
        assert type(outcome).__name__ == "Applied", outcome
    naive = time.perf_counter() - started
    await state.close()
    await registry.aclose()
    return {f"{tag}_map": ACTUALS, f"{tag}_rows_per_s": n / engine, f"{tag}_naive_rows_per_s": sample / naive,
            f"{tag}_raw_floor_rows_per_s": n / floor, f"{tag}_failed_rows": float(summary.failed)}


async def finance_to_dataverse(dv: Any, fo: Any, n: int, sample: int, tmp: Path) -> dict[str, Any]:
    name, tag = "workers", "finance_to_dataverse"
    dv_emu, fo_emu = dv.app.state.emulator, fo.app.state.emulator

    def reset() -> None:
        dv_emu.reset()
        fo_emu.reset()
        _load(fo_emu, "Workers", workers(n))

    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token", static_token=TOKEN,
                             batch_size=BATCH, initial_sync_concurrency=CONCURRENCY, page_size=PAGE)
    reset()
    floor = await raw_floor(Side.FINANCE, dv, fo, name)
    assert dv_emu.count("cdm_workers") == n, "raw floor rows missing"

    reset()
    state = SqliteStateStore(tmp / f"{tag}.sqlite")
    await state.open()
    ctx = BulkContext.from_settings(settings, COMPILED, state)
    started = time.perf_counter()
    summary = await InitialSync(ctx).run([name])
    engine = time.perf_counter() - started
    assert dv_emu.count("cdm_workers") == n and summary.failed == 0, summary.as_dict()

    reset()
    handler = SyncHandler(COMPILED, {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED),
                                     Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}, state)
    keys = [f'["W{i:08d}"]' for i in range(sample)]
    for k in keys:  # reset the ledger so the naive pass writes
        await state.delete_ledger(name, f"{k}|to-dataverse")
    started = time.perf_counter()
    for k in keys:
        await handler.handle(name, Side.FINANCE, key=k)
    naive = time.perf_counter() - started
    await state.close()
    await registry.aclose()
    return {f"{tag}_map": name, f"{tag}_rows_per_s": n / engine, f"{tag}_naive_rows_per_s": sample / naive,
            f"{tag}_raw_floor_rows_per_s": n / floor, f"{tag}_failed_rows": float(summary.failed)}


# The CLI run in-process by a wrapper that records its own peak RSS at exit. ``VmHWM`` is the high
# water mark of this process's memory alone: the child's ``ru_maxrss`` (wait4, getrusage) would also
# hold the parent's peak from before exec (Linux keeps it across fork/vfork + exec), and the parent
# holds the emulators with every row, which made the figure grow with the table.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv = ["dualsync", *sys.argv[1:]]
runpy.run_module("cli", run_name="__main__")
"""


def peak_rss_mb(dv: Any, fo: Any, n: int, tmp: Path) -> float:
    """Peak RSS (MiB) of a `dualsync initial-sync --map workers` process syncing ``n`` workers."""
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    _load(fo.app.state.emulator, "Workers", workers(n))
    peak_file = tmp / f"peak{n}.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}
    env.update({"DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url, "DUALSYNC_AUTH_MODE": "static_token",
                "DUALSYNC_STATIC_TOKEN": TOKEN, "DUALSYNC_STATE_SQLITE_PATH": str(tmp / f"rss{n}.sqlite"),
                "PYTHONPATH": str(ROOT), "BENCH_PEAK_FILE": str(peak_file)})
    code = subprocess.call([sys.executable, "-c", _PEAK_WRAPPER, "initial-sync", "--map", "workers", "--json"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"initial-sync of {n} workers exited {code}")
    if dv.app.state.emulator.count("cdm_workers") != n:
        raise RuntimeError("the memory run did not write every row")
    return int(peak_file.read_text()) / 1024  # KiB


async def _run(quick: bool) -> dict[str, Any]:
    n = 5_000 if quick else 100_000
    sample = 100 if quick else 500
    small, large = (2_000, 20_000) if quick else (10_000, 1_000_000)
    dv, fo = dataverse.start(port=0, token=TOKEN), finance.start(port=0, token=TOKEN)
    figures: dict[str, Any] = {"rows": n, "naive_sample_rows": sample, "batch_size": BATCH,
                               "concurrency": CONCURRENCY, "page_size": PAGE}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures.update(await dataverse_to_finance(dv, fo, n, sample, Path(tmp)))
            figures.update(await finance_to_dataverse(dv, fo, n, sample, Path(tmp)))
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
