"""``dualsync bench emulator``: how fast the emulators take single upserts and ``$batch`` writes.

Each emulator runs in its own process (``python -m cli emulator ...``) so the client and the server
don't share a GIL, as a real connector and the emulator wouldn't. The client is a pooled
``httpx.Client`` per client process (two processes, four threads each: modest concurrency). Figures: single PATCH requests per second and rows
per second through ``$batch`` requests of 1000 changes in one change set, for both services.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import httpx

from sandbox.httpserver import free_port
from sandbox.odata.batch import BatchRequest, ChangeSet, parse_batch_response, write_batch_request

TOKEN = "bench-token"
CONCURRENCY = 4  # threads per client process
CLIENT_PROCESSES = 2  # the client side, not the emulator, would otherwise be what limits the figure
BATCH_SIZE = 1000


@contextlib.contextmanager
def emulator_process(service: str) -> Iterator[str]:
    """``python -m cli emulator <service>`` (in-memory store) on a free loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "emulator", service, "--port", str(port),
                             "--token", TOKEN], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{service} emulator did not start: {err[-500:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _patch_worker(root: str, urls: list[str], bodies: list[bytes], start_at: float) -> tuple[int, float]:
    """One client process: a pooled httpx client driven by CONCURRENCY threads; returns (count, end time)."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=root, headers=headers, limits=limits, timeout=30) as client, \
            ThreadPoolExecutor(CONCURRENCY) as pool:
        def one(i: int) -> None:
            r = client.patch(urls[i], content=bodies[i])
            if r.status_code >= 300:
                raise RuntimeError(f"PATCH {urls[i]} -> {r.status_code} {r.text[:200]}")

        warm = min(len(urls), CONCURRENCY * 4)
        list(pool.map(one, range(warm)))  # open the pool's connections first
        time.sleep(max(0.0, start_at - time.time()))
        list(pool.map(one, range(warm, len(urls))))
        return len(urls) - warm, time.time()


def _patches(root: str, count: int, url_of: Callable[[int], str], body_of: Callable[[int], dict[str, Any]]) -> float:
    """Single PATCH requests per second from CLIENT_PROCESSES processes started together."""
    share = count // CLIENT_PROCESSES
    jobs = [([url_of(i) for i in range(p * share, (p + 1) * share)],
             [json.dumps(body_of(i)).encode() for i in range(p * share, (p + 1) * share)])
            for p in range(CLIENT_PROCESSES)]
    start_at = time.time() + 1.5  # every process is up and warm by then
    with ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("fork")) as ex:
        results = list(ex.map(_patch_worker, [root] * len(jobs), [j[0] for j in jobs], [j[1] for j in jobs],
                              [start_at] * len(jobs)))
    done = sum(n for n, _ in results)
    return done / (max(end for _, end in results) - start_at)


def _batches(root: str, batch_url: str, batches: int, part_of: Callable[[int], BatchRequest]) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=root, headers=headers, timeout=120) as client:
        bodies = [write_batch_request([ChangeSet([part_of(b * BATCH_SIZE + i) for i in range(BATCH_SIZE)])])
                  for b in range(batches)]
        t0 = time.perf_counter()
        for body, ctype in bodies:
            r = client.post(batch_url, content=body, headers={"Content-Type": ctype})
            if r.status_code != 200:
                raise RuntimeError(f"$batch -> {r.status_code} {r.text[:300]}")
            items = parse_batch_response(r.content, r.headers["content-type"])
            statuses = [p.status for item in items for p in (item if isinstance(item, list) else [item])]
            if len(statuses) != BATCH_SIZE or any(s >= 300 for s in statuses):
                raise RuntimeError(f"$batch parts failed: {sorted(set(statuses))}")
        return batches * BATCH_SIZE / (time.perf_counter() - t0)


def _dataverse(patches: int, batches: int) -> dict[str, float]:
    json_h = {"Content-Type": "application/json"}
    with emulator_process("dataverse") as url:
        root = url + "/api/data/v9.2/"
        patch = _patches(root, patches, lambda i: f"cdm_workers(cdm_workernumber='W{i:07d}')",
                                     lambda i: {"cdm_fullname": f"Worker {i}", "cdm_firstname": "Bench"})
        rows = _batches(root, "$batch", batches, lambda i: BatchRequest(
            "PATCH", f"/api/data/v9.2/msdyn_transactioncategories(msdyn_name='CAT{i:07d}')", json_h,
            json.dumps({"msdyn_description": f"Category {i}"}).encode()))
    return {"dataverse_patch_per_s": round(patch, 1), "dataverse_batch_rows_per_s": round(rows, 1)}


def _finance(patches: int, batches: int) -> dict[str, float]:
    json_h = {"Content-Type": "application/json"}
    with emulator_process("finance") as url:
        root = url + "/data/"
        # Finance has no PATCH-upsert: create the rows first (through $batch), then update them one by one.
        rows = _batches(root, "$batch", batches, lambda i: BatchRequest(
            "POST", "/data/ProjCDSCategories", json_h,
            json.dumps({"CategoryId": f"CAT{i:07d}", "Name": f"Category {i}"}).encode()))
        patch = _patches(root, patches, lambda i: f"ProjCDSCategories(CategoryId='CAT{i % (batches * BATCH_SIZE):07d}')",
                                     lambda i: {"Name": f"Renamed {i}"})
    return {"finance_patch_per_s": round(patch, 1), "finance_batch_rows_per_s": round(rows, 1)}


def run(quick: bool = False) -> dict[str, Any]:
    patches, batches = (600, 2) if quick else (5000, 10)
    figures: dict[str, Any] = {}
    figures.update(_dataverse(patches, batches))
    notes = []
    try:
        figures.update(_finance(patches, batches))
    except (RuntimeError, httpx.HTTPError) as exc:
        notes.append(f"finance not measured: {exc}")
    ratios: dict[str, float] = {}
    if figures.get("dataverse_patch_per_s"):
        ratios["dataverse_batch_vs_patch"] = round(figures["dataverse_batch_rows_per_s"]
                                                   / figures["dataverse_patch_per_s"], 2)
    result: dict[str, Any] = {"bench": "emulator", "figures": figures, "ratios": ratios,
                              "goals": {"dataverse_patch_per_s": ">1500", "dataverse_batch_rows_per_s": ">15000",
                                        "finance_patch_per_s": ">1500", "finance_batch_rows_per_s": ">15000"}}
    if notes:
        result["notes"] = notes
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv)))
