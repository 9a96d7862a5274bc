"""The emulator must not be what limits connector benchmarks: measure single PATCH and $batch rates.

Bounds are a fraction of the targets (1,500 PATCH/s, 15,000 rows/s through $batch of 1000 on 2 cores)
so a loaded CI box doesn't flake; the measured figures are printed.
"""

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
    assert patch_rate > 300
    assert batch_rate > 4000
