"""Initial sync benchmark: the engine end to end vs a naive writer vs the raw floor of the same emulators.

Directions, each in one run against real HTTP emulators:
- ``dataverse_to_finance``: ``actuals`` (``msdyn_actuals`` -> ``ProjCDSActualsImports``), as the issue
  asks: demo Project Operations data is loaded and its parents (projects, tasks, contracts, lines,
  categories, resources, currencies, legal entities) synced first, untimed; then the demo actuals are
  cloned to ``rows`` actuals, whose seven lookups the engine resolves in bulk per page;
- ``finance_to_dataverse``: ``workers`` (``Workers`` -> ``cdm_workers``).

Each emulator runs in its own process (``dualsync emulator <service> --db FILE`` on a free port), as
Dataverse and Finance are other machines in Azure: sharing this process's GIL would tax the engine
(more client CPU) more than the floor. The data is prepared once per direction into SQLite snapshot
files (on tmpfs when there is one); every timed phase starts fresh emulator processes on a copy of
the same snapshot, so the engine, the floor and the naive writer meet the same starting state.

Figures per direction: ``*_rows_per_s`` (read, map, bulk lookups, batched concurrent writes, ledger,
checkpoints); ``*_naive_rows_per_s`` (the live handler, one read and one upsert per row, sequential,
on a sample); ``*_raw_floor_rows_per_s`` (a bare ``httpx`` client reads the same pages, from the
engine's own first URL with its ``$select`` and ``$expand``, and posts the already-mapped rows in
pre-built requests of the kind the engine sends (``$batch`` into Finance; into Dataverse
``UpsertMultiple``, or ``$batch`` when ``DUALSYNC_DATAVERSE_BULK_WRITE`` says so) with the same
concurrency: no mapping, ledger or bookkeeping). Engine
and floor are alternated ``ROUNDS`` times per direction and the best of each is reported; the
1-minute load average at start and end says how noisy the machine was. ``rss_mb_<n>``: peak
resident memory of a ``dualsync initial-sync`` subprocess syncing ``n`` workers (its own
``VmHWM``; the emulators are other processes and are not counted), for flat memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.connectors import Request, batches, upsert_multiples
from sandbox.dataverse import DataverseEmulator
from sandbox.finance import FinanceEmulator
from sandbox.httpserver import free_port
from shared.bulk import BulkContext, InitialSync
from shared.bulk.source import first_url
from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.connectors import batch as odata_batch
from shared.connectors.finance import NO_ECHO
from shared.connectors.http import registry
from shared.mapping import compile_catalog
from shared.settings import DEFAULT_MAPS_DIR, Settings, load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.sides import DataverseSide, FinanceSide

TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parents[1]
COMPILED = compile_catalog(load_catalog(DEFAULT_MAPS_DIR))
BATCH, CONCURRENCY, PAGE = 100, 4, 5000
DV_BULK_WRITE: str = Settings.model_fields["dataverse_bulk_write"].default.value
ACTUALS = "actuals"
DEMO_ROWS, DEMO_SEED = 600, 3  # the demo world the actuals point into
SERVICES = ("dataverse", "finance")
ROUNDS = 2  # engine and floor alternated this many times per direction; the best of each is reported


def workers(n: int) -> list[dict[str, Any]]:
    return [{"PersonnelNumber": f"W{i:08d}", "Name": f"Worker {i}", "FirstName": "Pat", "LastName": f"Lee {i}",
             "PrimaryContactEmail": f"w{i}@contoso.example", "WorkerType": "Employee",
             "EmploymentLegalEntityId": "USPM", "EmploymentStartDate": "2023-12-02T09:00:00Z"} for i in range(n)]


@dataclass(frozen=True)
class Snapshot:
    """Both emulators' SQLite files and the engine's state store, in one folder."""

    folder: Path

    @property
    def dataverse(self) -> Path:
        return self.folder / "dataverse.sqlite"

    @property
    def finance(self) -> Path:
        return self.folder / "finance.sqlite"

    @property
    def state(self) -> Path:
        return self.folder / "state.sqlite"

    def settle(self) -> None:
        """Fold each file's write-ahead log into it, so a plain copy is the whole database."""
        for path in (self.dataverse, self.finance, self.state):
            if path.exists():
                conn = sqlite3.connect(path)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()

    def copy(self, name: str) -> Snapshot:
        self.settle()
        other = Snapshot(self.folder.parent / name)
        shutil.rmtree(other.folder, ignore_errors=True)
        other.folder.mkdir(parents=True)
        for path in (self.dataverse, self.finance, self.state):
            if path.exists():
                shutil.copyfile(path, other.folder / path.name)
        return other

    @contextlib.contextmanager
    def emulators(self) -> Iterator[tuple[DataverseEmulator, FinanceEmulator]]:
        """The emulators' control objects on these files, in this process (to load and to count)."""
        dv, fo = DataverseEmulator(db=self.dataverse, token=TOKEN), FinanceEmulator(db=self.finance, token=TOKEN)
        try:
            yield dv, fo
        finally:
            dv.store.close()
            fo.store.close()


class EmulatorProcess:
    """``dualsync emulator <service> --db FILE`` on a free loopback port; ``stop()`` is SIGTERM."""

    def __init__(self, service: str, db: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "emulator", service, "--port", str(self.port),
                                      "--db", str(db), "--token", TOKEN], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"the {service} emulator did not start: {said[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()


@dataclass(frozen=True)
class Served:
    dataverse: str
    finance: str

    def settings(self) -> Settings:
        return load_settings(dataverse_url=self.dataverse, finance_url=self.finance, auth_mode="static_token",
                             static_token=TOKEN, batch_size=BATCH, initial_sync_concurrency=CONCURRENCY,
                             page_size=PAGE)


@contextlib.asynccontextmanager
async def served(snap: Snapshot) -> AsyncIterator[Served]:
    """Both emulators in their own processes on ``snap``'s files; stopped (and clients closed) after."""
    procs: list[EmulatorProcess] = []
    try:
        for service, db in zip(SERVICES, (snap.dataverse, snap.finance), strict=True):
            procs.append(await asyncio.to_thread(EmulatorProcess, service, db))
        yield Served(procs[0].url, procs[1].url)
    finally:
        await registry.aclose()
        for p in procs:
            await asyncio.to_thread(p.stop)


def _load(emu: Any, entity_set: str, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 20_000):
        emu.load_rows(entity_set, rows[i:i + 20_000])


def _actuals_world(dv_emu: DataverseEmulator, fo_emu: FinanceEmulator, n: int) -> None:
    """Demo data on both sides, then ``n`` actuals on Dataverse cloned from the demo's."""
    from sandbox.demo import load

    load(dv_emu, fo_emu, rows=DEMO_ROWS, seed=DEMO_SEED)
    templates = list(dv_emu.rows("msdyn_actuals"))
    extra = n - len(templates)
    if extra < 0:
        raise ValueError(f"the demo world already holds {len(templates)} actuals; ask for at least that many")
    clones = ({**templates[i % len(templates)], "msdyn_actualid": str(uuid.UUID(int=i + 1))} for i in range(extra))
    for chunk in iter(lambda: list(itertools.islice(clones, 20_000)), []):
        dv_emu.load_rows("msdyn_actuals", chunk)


def _ancestors(catalog: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [d for d in catalog[name].depends_on if d != name]
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo += [d for d in catalog[dep].depends_on if d != dep]
    return seen


async def _open_state(path: Path) -> SqliteStateStore:
    state = SqliteStateStore(path)
    await state.open()
    return state


async def _engine_first_url(urls: Served, name: str, source: Side) -> str:
    """The first page the engine reads (its ``$select``, ``$expand`` and filter): the floor reads the same."""
    state = SqliteStateStore(":memory:")  # never opened: building a URL touches no state
    return await first_url(BulkContext.from_settings(urls.settings(), COMPILED, state), COMPILED[name], source)


async def raw_floor(source: Side, urls: Served, name: str, mapped: list[dict[str, Any]] | None = None) -> float:
    """Seconds for a bare client to read every source page and post the mapped rows as $batch.

    ``mapped``: the target rows, when the mapping needs more than the source row (lookups resolved by
    the engine); otherwise mapped here from the rows read, before the clock starts."""
    cm = COMPILED[name]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "OData-Version": "4.0"}
    src_root = f"{urls.dataverse}/api/data/v9.2/" if source is Side.DATAVERSE else f"{urls.finance}/data/"
    dst_root = f"{urls.finance}/data/" if source is Side.DATAVERSE else f"{urls.dataverse}/api/data/v9.2/"
    first = await _engine_first_url(urls, name, source)  # the very pages the engine reads
    if mapped is None:  # what the target should receive, built before the clock starts
        async with httpx.AsyncClient(timeout=120) as c:
            rows, url = [], src_root + first
            while url:
                body = (await c.get(url, headers={**headers, "Prefer": f"odata.maxpagesize={PAGE}"})).json()
                rows += body["value"]
                url = body.get("@odata.nextLink")
        mapped = [cm.to_side(source.other)(r) for r in rows]
    # The kind of request the engine sends: $batch POSTs into Finance; into Dataverse what the
    # DUALSYNC_DATAVERSE_BULK_WRITE default says (UpsertMultiple bodies, or $batch PATCHes).
    bodies: list[Request]
    if source is Side.DATAVERSE:
        bodies = batches(dst_root + "$batch", [
            odata_batch.Part("POST", f"{dst_root}{cm.map.finance.entity_set}", m, NO_ECHO) for m in mapped], BATCH)
    else:
        dv = cm.map.dataverse
        at = [f"{dv.entity_set}(cdm_workernumber='{m['cdm_workernumber']}')" for m in mapped]
        if DV_BULK_WRITE == "upsert_multiple":
            bodies = upsert_multiples(f"{dst_root}{dv.entity_set}/Microsoft.Dynamics.CRM.UpsertMultiple", [
                {"@odata.type": f"Microsoft.Dynamics.CRM.{dv.table}", "@odata.id": ref, **m}
                for ref, m in zip(at, mapped, strict=True)], BATCH)
        else:
            bodies = batches(dst_root + "$batch", [odata_batch.Part("PATCH", dst_root + ref, m)
                                                   for ref, m in zip(at, mapped, strict=True)], BATCH)
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
                target, ctype, payload = queue.pop()
                r = await c.post(target, content=payload,
                                 headers={**headers, "Content-Type": ctype, "Prefer": "odata.continue-on-error"})
                if r.status_code == 204:  # UpsertMultiple: all or nothing, so every row landed
                    continue
                if r.status_code != 200:
                    raise RuntimeError(f"raw floor request answered {r.status_code}")
                if b" 201 " not in r.content and b" 204 " not in r.content:
                    raise RuntimeError("raw floor batch wrote nothing")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def _engine(snap: Snapshot, maps: list[str]) -> tuple[float, int]:
    """Seconds for the engine to sync ``maps`` on ``snap`` (its state store included), and rows failed."""
    async with served(snap) as urls:
        state = await _open_state(snap.state)
        try:
            ctx = BulkContext.from_settings(urls.settings(), COMPILED, state)
            started = time.perf_counter()
            summary = await InitialSync(ctx).run(maps)
            return time.perf_counter() - started, summary.failed
        finally:
            await state.close()


async def _naive(snap: Snapshot, name: str, source: Side, refs: list[dict[str, Any]]) -> float:
    """Seconds for the live handler to sync the rows named by ``refs`` one at a time."""
    async with served(snap) as urls:
        state = await _open_state(snap.state)
        try:
            ctx = BulkContext.from_settings(urls.settings(), COMPILED, state)
            handler = SyncHandler(COMPILED, {Side.DATAVERSE: DataverseSide(ctx.dataverse, COMPILED),
                                             Side.FINANCE: FinanceSide(ctx.finance, COMPILED)}, state)
            started = time.perf_counter()
            for ref in refs:
                outcome = await handler.handle(name, source, **ref)
                assert type(outcome).__name__ == "Applied", outcome
            return time.perf_counter() - started
        finally:
            await state.close()


async def dataverse_to_finance(n: int, sample: int, tmp: Path) -> dict[str, Any]:
    """Actuals: engine, raw floor (posting the rows the engine wrote), naive handler on a sample."""
    tag, cm = "dataverse_to_finance", COMPILED[ACTUALS]
    target_set = cm.map.finance.entity_set
    snap = Snapshot(tmp / "actuals")
    snap.folder.mkdir(parents=True)
    with snap.emulators() as (dv_emu, fo_emu):
        _actuals_world(dv_emu, fo_emu, n)
        ids = [r["msdyn_actualid"] for r in itertools.islice(dv_emu.rows("msdyn_actuals"), sample)]
    parents = sorted(_ancestors({k: c.map for k, c in COMPILED.items()}, ACTUALS))
    _, failed = await _engine(snap, parents)  # the parents, untimed, into the snapshot's state store
    if failed:
        raise RuntimeError(f"{failed} parent rows of {ACTUALS} did not sync")

    engine = floor = float("inf")
    for round_ in range(ROUNDS):  # alternated, best of each: load from other processes hits both alike
        run = snap.copy(f"actuals-engine{round_}")
        seconds, failed = await _engine(run, [ACTUALS])
        engine = min(engine, seconds)
        with run.emulators() as (_, fo_emu):
            assert fo_emu.count(target_set) == n and failed == 0, (fo_emu.count(target_set), failed)
            fields = {f.finance for f in cm.map.fields if f.finance} | {"dataAreaId"}
            written = [{k: v for k, v in r.items() if k in fields} for r in fo_emu.rows(target_set)]
        shutil.rmtree(run.folder)

        run = snap.copy(f"actuals-floor{round_}")
        async with served(run) as urls:
            floor = min(floor, await raw_floor(Side.DATAVERSE, urls, ACTUALS, written))
        with run.emulators() as (_, fo_emu):
            assert fo_emu.count(target_set) == n, "raw floor rows missing"
        shutil.rmtree(run.folder)
        del written

    naive = await _naive(snap.copy("actuals-naive"), ACTUALS, Side.DATAVERSE, [{"record_id": i} for i in ids])
    return {f"{tag}_map": ACTUALS, f"{tag}_rows_per_s": n / engine, f"{tag}_naive_rows_per_s": sample / naive,
            f"{tag}_raw_floor_rows_per_s": n / floor, f"{tag}_failed_rows": float(failed)}


async def finance_to_dataverse(n: int, sample: int, tmp: Path) -> dict[str, Any]:
    name, tag = "workers", "finance_to_dataverse"
    snap = Snapshot(tmp / name)
    snap.folder.mkdir(parents=True)
    with snap.emulators() as (_, fo_emu):
        _load(fo_emu, "Workers", workers(n))

    engine = floor = float("inf")
    for round_ in range(ROUNDS):  # alternated, best of each
        run = snap.copy(f"workers-floor{round_}")
        async with served(run) as urls:
            floor = min(floor, await raw_floor(Side.FINANCE, urls, name))
        with run.emulators() as (dv_emu, _):
            assert dv_emu.count("cdm_workers") == n, "raw floor rows missing"
        shutil.rmtree(run.folder)

        run = snap.copy(f"workers-engine{round_}")
        seconds, failed = await _engine(run, [name])
        engine = min(engine, seconds)
        with run.emulators() as (dv_emu, _):
            assert dv_emu.count("cdm_workers") == n and failed == 0, (dv_emu.count("cdm_workers"), failed)
        shutil.rmtree(run.folder)

    naive = await _naive(snap.copy("workers-naive"), name, Side.FINANCE,
                         [{"key": f'["W{i:08d}"]'} for i in range(sample)])
    return {f"{tag}_map": name, f"{tag}_rows_per_s": n / engine, f"{tag}_naive_rows_per_s": sample / naive,
            f"{tag}_raw_floor_rows_per_s": n / floor, f"{tag}_failed_rows": float(failed)}


# The CLI run in-process by a wrapper that records its own peak RSS at exit. ``VmHWM`` is the high
# water mark of this process's memory alone: the child's ``ru_maxrss`` (wait4, getrusage) would also
# hold the parent's peak from before exec (Linux keeps it across fork/vfork + exec).
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


async def peak_rss_mb(n: int, tmp: Path) -> float:
    """Peak RSS (MiB) of a `dualsync initial-sync --map workers` process syncing ``n`` workers."""
    snap = Snapshot(tmp / f"rss{n}")
    snap.folder.mkdir(parents=True)
    with snap.emulators() as (_, fo_emu):
        _load(fo_emu, "Workers", workers(n))
    peak_file = snap.folder / "peak.txt"
    async with served(snap) as urls:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}
        env.update({"DUALSYNC_DATAVERSE_URL": urls.dataverse, "DUALSYNC_FINANCE_URL": urls.finance,
                    "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": TOKEN,
                    "DUALSYNC_STATE_SQLITE_PATH": str(snap.state), "PYTHONPATH": str(ROOT),
                    "BENCH_PEAK_FILE": str(peak_file)})
        cmd = [sys.executable, "-c", _PEAK_WRAPPER, "initial-sync", "--map", "workers", "--json"]
        code = await asyncio.to_thread(subprocess.call, cmd, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"initial-sync of {n} workers exited {code}")
    with snap.emulators() as (dv_emu, _):
        if dv_emu.count("cdm_workers") != n:
            raise RuntimeError("the memory run did not write every row")
    return int(peak_file.read_text()) / 1024  # KiB


def _scratch() -> str | None:
    """tmpfs when there is one: the emulators' files in memory, as the in-process emulators were."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


async def _run(quick: bool) -> dict[str, Any]:
    n = 5_000 if quick else 100_000
    sample = 100 if quick else 500
    small, large = (2_000, 20_000) if quick else (10_000, 1_000_000)
    figures: dict[str, Any] = {"rows": n, "naive_sample_rows": sample, "batch_size": BATCH,
                               "concurrency": CONCURRENCY, "page_size": PAGE, "emulators": "own processes",
                               "rounds": ROUNDS, "load_avg_1m_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="dualsync-bench-", dir=_scratch()) as tmp:
        figures.update(await dataverse_to_finance(n, sample, Path(tmp)))
        figures.update(await finance_to_dataverse(n, sample, Path(tmp)))
        figures[f"rss_mb_{small // 1000}k"] = await peak_rss_mb(small, Path(tmp))
        label = f"{large // 1_000_000}m" if large >= 1_000_000 else f"{large // 1000}k"
        figures[f"rss_mb_{label}"] = await peak_rss_mb(large, Path(tmp))
    figures["load_avg_1m_end"] = os.getloadavg()[0]  # above ~2 on 2 cores, read the figures as noisy
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
