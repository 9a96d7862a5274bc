"""Connectors benchmark: batched concurrent writes vs a naive writer vs a raw HTTP floor, per emulator.

For each emulator (Dataverse ``msdyn_actuals``, Finance ``ProjCDSActualsImports``, rows shaped as
the emulators' schemas define those tables), in one run:

- ``*_connector_rows_per_s``: the connector's ``write_batch`` (row dicts -> ``Upsert`` writes ->
  chunked ``$batch`` requests at the settings' concurrency, per-row outcomes checked);
- ``*_naive_rows_per_s``: one upsert request per row, sequentially, measured on a sample and
  extrapolated as a rate (the sample size is in the figures);
- ``*_raw_floor_rows_per_s``: the same ``$batch`` bodies built before the clock starts and fired
  with the same concurrency through a bare ``httpx.AsyncClient`` (no mapping, retries, limiter or
  bookkeeping) — the fastest this emulator can take these rows over HTTP.
- Throttled: the emulator admits ``R`` requests per ``W`` seconds; the connector writes through it.
  ``throttle_efficiency`` = achieved rows/s / allowed rows/s, where allowed is the most the sliding
  window admits in the elapsed time T: R * (floor(T/W) + 1) * batch size / T; ``failed_rows``.
- A batch-size sweep on both services (``<service>[_<mode>]_rows_per_s_batch_<n>``, Dataverse in
  both bulk-write modes) that chose the defaults of ``DUALSYNC_BATCH_SIZE`` and
  ``DUALSYNC_DATAVERSE_BULK_WRITE``.

The connector runs with the settings' defaults (batch size, Dataverse bulk-write mode), so the
figures are what a deployment gets; the raw floor sends the same kind of request (``UpsertMultiple``
bodies or ``$batch`` bodies, as the connector's mode) with the same rows per request.

Each emulator runs in its own process (``python -m cli emulator``), as the services run on other
machines: in one process the emulators' per-row work and the client shared one GIL, so every figure
measured their sum. Setup, counts, resets and the throttle go through the emulators' control API
and OData, before or after the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from bench.emulator import emulator_process
from shared.connectors import DataverseConnector, FinanceConnector, Upsert, WriteResult, jsoncodec
from shared.connectors import batch as odata_batch
from shared.connectors.finance import NO_ECHO
from shared.connectors.http import registry
from shared.settings import Settings, load_settings

TOKEN = "bench-token"
CONCURRENCY = 8
BATCH_SIZE: int = Settings.model_fields["batch_size"].default  # what a deployment gets
BULK_WRITE: str = Settings.model_fields["dataverse_bulk_write"].default.value
DV_SET, FO_SET = "msdyn_actuals", "ProjCDSActualsImports"
DV_TYPE = "Microsoft.Dynamics.CRM.msdyn_actual"

# One pre-built request of the raw floor: (url, content type, body).
Request = tuple[str, str, bytes]


# --- rows -------------------------------------------------------------------------------------------

def dv_actual(n: int, project_id: str) -> tuple[str, dict[str, Any]]:
    """(primary id, body) of a time actual; msdyn_actual has no alternate key, so it is addressed by id."""
    return str(uuid.uuid4()), {
        "msdyn_description": f"Time actual {n}",
        "msdyn_transactionclassification": 690970000,  # Time
        "msdyn_transactiontypecode": 192350000,  # Cost
        "msdyn_billingtype": 192350001,  # Chargeable
        "msdyn_quantity": 8,
        "msdyn_price": 100.0,
        "msdyn_amount": 800.0,
        "msdyn_documentdate": "2024-03-01",
        "msdyn_project@odata.bind": f"/msdyn_projects({project_id})",
    }


def fo_actual(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"dataAreaId": "usmf", "ActualId": f"ACT-{n:07d}"}, {
        "ProjectId": "PRJ-1", "TransactionClassification": "Time", "AccountingDate": "2024-03-01",
        "Quantity": 8.0, "UnitPrice": 100.0, "Amount": 800.0, "TransactionCurrencyId": "USD",
        "Description": f"Time actual {n}",
    }


class Emulator:
    """An emulator in its own process: its control API and the few OData calls the bench makes
    off the clock (setup rows, counts). ``url`` is the server; ``root`` its OData service root."""

    def __init__(self, url: str, api_path: str) -> None:
        self.url, self.root = url, f"{url}/{api_path}"
        self._http = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
                                  timeout=120)

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 300:
            raise RuntimeError(f"{response.request.method} {response.request.url.path} -> "
                               f"{response.status_code} {response.text[:300]}")
        return response

    def reset(self) -> None:
        self._ok(self._http.post(f"{self.url}/_emulator/reset"))

    def set_throttle(self, requests_per_window: int | None, window_seconds: float = 300.0) -> None:
        self._ok(self._http.put(f"{self.url}/_emulator/throttle", json={
            "requests_per_window": requests_per_window, "window_seconds": window_seconds}))

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._ok(self._http.get(f"{self.url}/_emulator/stats")).json()
        return stats

    def count(self, entity_set: str) -> int:
        return int(self._ok(self._http.get(f"{self.root}{entity_set}/$count")).text)

    def create(self, entity_set: str, row: dict[str, Any]) -> str:
        """POST one row; its id (Dataverse's OData-EntityId) or its URL (Finance's Location)."""
        r = self._ok(self._http.post(f"{self.root}{entity_set}", json=row))
        link = r.headers.get("odata-entityid") or r.headers.get("location", "")
        return link.rsplit("(", 1)[-1].rstrip(")")

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def emulator(service: str, api_path: str) -> Iterator[Emulator]:
    with emulator_process(service) as url:
        emu = Emulator(url, api_path)
        try:
            yield emu
        finally:
            emu.close()


def prepare_dataverse(emu: Emulator) -> str:
    emu.reset()
    company = emu.create("cdm_companies", {"cdm_companycode": "USMF"})
    return emu.create("msdyn_projects", {"msdyn_subject": "Bench", "msdyn_projectnumber": "PRJ-1",
                                         "msdyn_company@odata.bind": f"/cdm_companies({company})"})


def prepare_finance(emu: Emulator) -> None:
    emu.reset()
    emu.create("Currencies", {"CurrencyCode": "USD", "Name": "US dollar"})
    emu.create("ProjCDSProjects", {"dataAreaId": "usmf", "ProjectID": "PRJ-1", "ProjectName": "Bench",
                                   "ProjectType": "TimeMaterial"})


# --- measurements -------------------------------------------------------------------------------------

async def timed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started


def failures(results: list[WriteResult]) -> int:
    return sum(1 for r in results if not r.ok)


async def raw_floor(requests: list[Request]) -> float:
    """Fire pre-built requests with CONCURRENCY in flight through a bare client; seconds taken."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        queue = list(reversed(requests))
        headers = {"Authorization": f"Bearer {TOKEN}", "Prefer": "odata.continue-on-error",
                   "Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}

        async def worker() -> None:
            while queue:
                url, ctype, body = queue.pop()
                r = await client.post(url, content=body, headers={**headers, "Content-Type": ctype})
                if r.status_code not in (200, 204):
                    raise RuntimeError(f"raw floor request answered {r.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def batches(url: str, parts: list[odata_batch.Part], size: int = BATCH_SIZE) -> list[Request]:
    return [(url, *odata_batch.build([parts[i:i + size]], atomic=False)) for i in range(0, len(parts), size)]


def upsert_multiples(url: str, targets: list[dict[str, Any]], size: int = BATCH_SIZE) -> list[Request]:
    return [(url, "application/json", jsoncodec.dumps({"Targets": targets[i:i + size]}))
            for i in range(0, len(targets), size)]


def dv_floor_requests(root: str, project: str, rows: int, mode: str) -> list[Request]:
    """The requests the connector would send for these rows, built before the clock starts."""
    actuals = [dv_actual(i, project) for i in range(rows)]
    if mode == "upsert_multiple":
        return upsert_multiples(f"{root}{DV_SET}/Microsoft.Dynamics.CRM.UpsertMultiple", [
            {"@odata.type": DV_TYPE, "@odata.id": f"{DV_SET}({rid})", **body} for rid, body in actuals])
    return batches(f"{root}$batch", [odata_batch.Part("PATCH", f"{root}{DV_SET}({rid})", body) for rid, body in actuals])


REPS = 3


def spread(values: list[float]) -> dict[str, float]:
    """Median and the relative spread ((max - min) / median) of repeated measurements."""
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "spread": (max(values) - min(values)) / med}


async def dv_rates(emu: Emulator, dv: DataverseConnector, rows: int, sample: int, order: int) -> dict[str, float]:
    """One repetition of raw floor, connector and naive on Dataverse, in ``order`` (alternated)."""
    root = emu.root

    def writes(n: int, project: str) -> list[Upsert]:
        return [Upsert(*dv_actual(i, project)) for i in range(n)]

    async def raw() -> float:
        project = prepare_dataverse(emu)
        seconds = await raw_floor(dv_floor_requests(root, project, rows, dv.bulk_write))
        assert emu.count(DV_SET) == rows, "raw floor rows missing"
        return rows / seconds

    failed = 0

    async def connector() -> float:
        nonlocal failed
        project = prepare_dataverse(emu)
        ws = writes(rows, project)  # the caller's rows exist before the clock starts, as in raw()
        results, seconds = await timed(dv.write_batch(DV_SET, ws))
        failed += failures(results) + (rows - emu.count(DV_SET))
        return rows / seconds

    async def naive() -> float:
        project = prepare_dataverse(emu)
        ws = writes(sample, project)
        started = time.perf_counter()
        for w in ws:
            await dv.upsert(DV_SET, w.key, w.row)
        return sample / (time.perf_counter() - started)

    return await _in_order(order, raw, connector, naive) | {"failed": failed}


async def fo_rates(emu: Emulator, fo: FinanceConnector, rows: int, sample: int, order: int) -> dict[str, float]:
    root = emu.root

    def writes(n: int) -> list[Upsert]:
        return [Upsert(k, b) for k, b in (fo_actual(i) for i in range(n))]

    async def raw() -> float:
        prepare_finance(emu)
        parts = [odata_batch.Part("POST", f"{root}{FO_SET}", {**b, **k}, NO_ECHO)
                 for k, b in (fo_actual(i) for i in range(rows))]
        seconds = await raw_floor(batches(f"{root}$batch", parts))
        assert emu.count(FO_SET) == rows, "raw floor rows missing"
        return rows / seconds

    failed = 0

    async def connector() -> float:
        nonlocal failed
        prepare_finance(emu)
        ws = writes(rows)
        results, seconds = await timed(fo.write_batch(FO_SET, ws, expect="new"))
        failed += failures(results) + (rows - emu.count(FO_SET))
        return rows / seconds

    async def naive() -> float:
        # One request per row (the baseline): the POST that creates it, as the connector's
        # create-first path does, through the same request path (auth, limiter, retry, logs).
        prepare_finance(emu)
        ws = writes(sample)
        started = time.perf_counter()
        for w in ws:
            await fo.http.request("POST", FO_SET, json_body={**w.row, **w.key}, headers=NO_ECHO)  # type: ignore[dict-item]
        return sample / (time.perf_counter() - started)

    return await _in_order(order, raw, connector, naive) | {"failed": failed}


async def _in_order(order: int, raw: Any, connector: Any, naive: Any) -> dict[str, float]:
    steps = [("raw_floor", raw), ("connector", connector), ("naive", naive)]
    if order % 2:
        steps.reverse()
    return {name: await fn() for name, fn in steps}


async def side_by_side(name: str, rates: Callable[[int], Any], reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``reps`` interleaved repetitions; ratios are paired per repetition, then the median taken."""
    runs = [await rates(i) for i in range(reps)]
    figures: dict[str, Any] = {}
    for what in ("raw_floor", "connector", "naive"):
        s = spread([r[what] for r in runs])
        figures[f"{name}_{what}_rows_per_s"] = s["median"]
        figures[f"{name}_{what}_spread"] = s["spread"]
    figures[f"{name}_connector_failed_rows"] = sum(int(r["failed"]) for r in runs)
    ratios: dict[str, Any] = {}
    for ratio, base in (("vs_raw_floor", "raw_floor"), ("vs_naive", "naive")):
        s = spread([r["connector"] / r[base] for r in runs])
        ratios[f"{name}_{ratio}"] = s["median"]
        figures[f"{name}_{ratio}_min"], figures[f"{name}_{ratio}_max"] = s["min"], s["max"]
    return figures, ratios


async def sweep_batch_size(
    name: str, sizes: list[int], reps: int, write: Callable[[int], Any], connector: Any
) -> dict[str, Any]:
    """Connector rows/s per batch size, sizes interleaved within each repetition; ``write(size)``
    prepares the emulator off the clock and returns (rows, coroutine writing them)."""
    seen: dict[int, list[float]] = {n: [] for n in sizes}
    for rep in range(reps):
        for size in sizes if rep % 2 == 0 else list(reversed(sizes)):
            connector.batch_size = size
            rows, coro = write(size)
            _, seconds = await timed(coro)
            seen[size].append(rows / seconds)
    connector.batch_size = BATCH_SIZE
    out: dict[str, Any] = {}
    for size, values in seen.items():
        s = spread(values)
        out[f"{name}_rows_per_s_batch_{size}"] = s["median"]
        out[f"{name}_rows_per_s_batch_{size}_spread"] = s["spread"]
    return out


async def sweeps(dv_emu: Emulator, fo_emu: Emulator, dv: DataverseConnector, fo: FinanceConnector,
                 sizes: list[int], rows: int, reps: int) -> dict[str, Any]:
    """The batch-size sweep behind the defaults: Dataverse in both bulk-write modes, Finance."""
    out: dict[str, Any] = {}
    for mode in ("upsert_multiple", "batch"):
        def dv_write(size: int, mode: Any = mode) -> tuple[int, Any]:
            project = prepare_dataverse(dv_emu)
            ws = [Upsert(*dv_actual(i, project)) for i in range(rows)]
            return rows, dv.write_batch(DV_SET, ws, mode=mode)
        out.update(await sweep_batch_size(f"dataverse_{mode}", sizes, reps, dv_write, dv))

    def fo_write(size: int) -> tuple[int, Any]:
        prepare_finance(fo_emu)
        return rows, fo.write_batch(FO_SET, [Upsert(k, b) for k, b in (fo_actual(i) for i in range(rows))],
                                    expect="new")
    out.update(await sweep_batch_size("finance", sizes, reps, fo_write, fo))
    return out


THROTTLE_REQUESTS, THROTTLE_WINDOW = 20, 2.0


async def throttled(emu: Emulator, name: str, write: Callable[[], Any], n: int) -> dict[str, Any]:
    emu.set_throttle(THROTTLE_REQUESTS, THROTTLE_WINDOW)
    try:
        results, seconds = await timed(write())
    finally:
        emu.set_throttle(None)
    # The most a sliding window of R requests per W seconds admits in ``seconds`` (starting empty):
    # R * (floor(T / W) + 1) requests. Dividing by it doesn't flatter short runs with the first burst.
    allowed = THROTTLE_REQUESTS * (math.floor(seconds / THROTTLE_WINDOW) + 1) * BATCH_SIZE / seconds
    return {
        f"{name}_throttled_rows_per_s": n / seconds,
        f"{name}_throttle_allowed_rows_per_s": allowed,
        f"{name}_throttled_failed_rows": failures(results),
        f"{name}_throttled_429s": emu.stats()["throttled"],
    }


async def _run(quick: bool) -> dict[str, Any]:
    rows = 5_000 if quick else 100_000
    sample = 100 if quick else 2_000  # sequential; a small sample was the noisiest figure
    # the throttled runs write as many rows as the others: a short run is mostly its learning burst
    throttled_rows = 6_000 if quick else rows
    sweep = [50, 100, 200, 500, 1000]
    sweep_rows = 2_000 if quick else 20_000
    logging.getLogger("stamina").setLevel(logging.ERROR)  # expected 429 retries in the throttled runs
    with emulator("dataverse", "api/data/v9.2/") as dv_emu, emulator("finance", "data/") as fo_emu:
        figures: dict[str, Any] = {
            "rows_per_emulator": rows, "naive_sample_rows": sample, "naive_extrapolated": True, "repetitions": REPS,
            "concurrency": CONCURRENCY, "batch_size": BATCH_SIZE, "dataverse_bulk_write": BULK_WRITE,
            "throttle_requests_per_window": THROTTLE_REQUESTS,
            "throttle_window_seconds": THROTTLE_WINDOW, "throttled_rows": throttled_rows,
            "emulators": "own processes"}
        settings = load_settings(dataverse_url=dv_emu.url, finance_url=fo_emu.url, auth_mode="static_token",
                                 static_token=TOKEN, max_concurrency=CONCURRENCY)
        dv = DataverseConnector.from_settings(settings)
        fo = FinanceConnector.from_settings(settings)
        ratios: dict[str, float] = {}
        for name, rates in (("dataverse", lambda i: dv_rates(dv_emu, dv, rows, sample, i)),
                            ("finance", lambda i: fo_rates(fo_emu, fo, rows, sample, i))):
            f, r = await side_by_side(name, rates, REPS)
            figures.update(f)
            ratios.update(r)
        figures.update(await sweeps(dv_emu, fo_emu, dv, fo, sweep, sweep_rows, REPS))
        project = prepare_dataverse(dv_emu)
        dv_writes = [Upsert(*dv_actual(i, project)) for i in range(throttled_rows)]
        # A fresh connector each: the throttled runs start knowing nothing of the window.
        await registry.aclose()
        dv, fo = DataverseConnector.from_settings(settings), FinanceConnector.from_settings(settings)
        figures.update(await throttled(dv_emu, "dataverse", lambda: dv.write_batch(DV_SET, dv_writes),
                                       throttled_rows))
        prepare_finance(fo_emu)
        fo_writes = [Upsert(k, b) for k, b in (fo_actual(i) for i in range(throttled_rows))]
        figures.update(await throttled(fo_emu, "finance",
                                       lambda: fo.write_batch(FO_SET, fo_writes, expect="new"), throttled_rows))
        figures["dataverse_learned_window"] = dv.http.limiter.budget.describe()
        figures["finance_learned_window"] = fo.http.limiter.budget.describe()
        await registry.aclose()
    for side in ("dataverse", "finance"):
        ratios[f"{side}_throttle_efficiency"] = (
            figures[f"{side}_throttled_rows_per_s"] / figures[f"{side}_throttle_allowed_rows_per_s"]
        )
        figures[f"{side}_throttled_vs_steady_allowed"] = (
            figures[f"{side}_throttled_rows_per_s"] / (THROTTLE_REQUESTS * BATCH_SIZE / THROTTLE_WINDOW)
        )
    ratios["vs_raw_floor"] = min(ratios["dataverse_vs_raw_floor"], ratios["finance_vs_raw_floor"])
    ratios["vs_naive"] = min(ratios["dataverse_vs_naive"], ratios["finance_vs_naive"])
    ratios["throttle_efficiency"] = min(ratios["dataverse_throttle_efficiency"], ratios["finance_throttle_efficiency"])
    figures["failed_rows"] = sum(int(v) for k, v in figures.items() if k.endswith("failed_rows") and k != "failed_rows")
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    return {
        "bench": "connectors",
        "figures": rounded,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "goals": {"vs_raw_floor": ">= 0.8", "vs_naive": ">= 20", "throttle_efficiency": ">= 0.9", "failed_rows": "0"},
    }


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(quick=True), indent=2))
