"""Single PATCHes and a $batch of 1000 in a row, as the connector benchmarks drive the emulator; the rates
are printed here and measured by ``dualsync bench emulator`` (a test asserts no timing: CI machines are
shared and their load varies)."""

from __future__ import annotations

import json
import time

import httpx

from sandbox.finance import FinanceEmulator
from sandbox.odata.batch import BatchRequest, ChangeSet, write_batch_request
from tests.emulators.finance.conftest import seed_basics


def test_single_patch_and_batch_rates(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    emulator.load_rows("ProjCDSProjects", ({"ProjectID": f"Q-{i}", "ProjectName": "x", "ProjectType": "Time"}
                                           for i in range(1000)))
    start = time.perf_counter()
    for i in range(600):
        r = client.patch(f"/ProjCDSProjects(dataAreaId='usmf',ProjectID='Q-{i}')", json={"ProjectName": f"n{i}"})
        assert r.status_code == 204
    patch_rate = 600 / (time.perf_counter() - start)

    start = time.perf_counter()
    for b in range(3):
        parts = [ChangeSet([BatchRequest("POST", "ProjCDSTasks", {"Content-Type": "application/json"},
                                         json.dumps({"ProjectId": f"Q-{i}", "Task": str(b), "Name": "t"}).encode(),
                                         str(i)) for i in range(1000)])]
        body, ctype = write_batch_request(parts)
        r = client.post("/$batch", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200 and b"HTTP/1.1 201" in r.content and b"HTTP/1.1 4" not in r.content, r.text[:2000]
    batch_rate = 3000 / (time.perf_counter() - start)
    assert emulator.count("ProjCDSTasks") == 3000
    print(f"finance emulator: {patch_rate:.0f} single PATCH/s, {batch_rate:.0f} rows/s via $batch of 1000")
    names = {r["ProjectID"]: r["ProjectName"] for r in emulator.rows("ProjCDSProjects")}
    assert all(names[f"Q-{i}"] == f"n{i}" for i in range(600)) and names["Q-600"] == "x"
