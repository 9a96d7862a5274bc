"""The initial-sync bench's setup: emulators in their own processes on a snapshot, each phase on a copy."""

from __future__ import annotations

import httpx

from bench import initial_sync as bench


async def test_emulators_serve_a_copy_of_the_snapshot_from_their_own_processes(tmp_path):
    snap = bench.Snapshot(tmp_path / "snap")
    snap.folder.mkdir()
    with snap.emulators() as (_, fo):
        fo.load_rows("Workers", bench.workers(3))
    run = snap.copy("run")

    async with bench.served(run) as urls:
        headers = {"Authorization": f"Bearer {bench.TOKEN}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as c:
            body = (await c.get(f"{urls.finance}/data/Workers?cross-company=true")).json()
            assert sorted(r["PersonnelNumber"] for r in body["value"]) == ["W00000000", "W00000001", "W00000002"]
            r = await c.patch(f"{urls.dataverse}/api/data/v9.2/cdm_workers(cdm_workernumber='W1')",
                              json={"cdm_workernumber": "W1", "cdm_firstname": "Pat", "cdm_lastname": "Lee"})
            assert r.status_code in (200, 204), r.text
        first = await bench._engine_first_url(urls, "workers", bench.Side.FINANCE)
        assert first.startswith("Workers?") and "cross-company=true" in first

    with run.emulators() as (dv, fo):  # the processes are gone; what they wrote is in the copy
        assert dv.count("cdm_workers") == 1 and fo.count("Workers") == 3
    with snap.emulators() as (dv, _):  # the snapshot itself is untouched
        assert dv.count("cdm_workers") == 0
