"""Loading demo data into both emulators: keys and relations hold, counts add up, chunks stay small."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import dataverse, finance
from sandbox.dataverse import DataverseEmulator
from sandbox.demo import generate, load
from sandbox.finance import FinanceEmulator
from sandbox.httpserver import RunningServer

TOKEN = "demo-token"


def test_load_with_finance_validation_succeeds_and_counts_match() -> None:
    dv, fo = DataverseEmulator(), FinanceEmulator()
    counts = load(dv, fo, 6000, seed=17, batch=500, counterparts=True, validate=True)
    expected = Counter(r.entity_set for r in generate(6000, 17, counterparts=True))
    assert counts == dict(expected)
    for entity_set, n in counts.items():
        target = dv if entity_set[0].islower() else fo
        assert target.count(entity_set) == n, entity_set


def test_finance_validation_needs_the_counterparts() -> None:
    """Without the Finance copies of the Dataverse masters, Finance refuses the first row that points at
    one (a project category on its shared category): the relations are really checked."""
    dv, fo = DataverseEmulator(), FinanceEmulator()
    with pytest.raises(ValueError, match="SharedCategoryId"):
        load(dv, fo, 3000, seed=17, validate=True)
    assert fo.count("ProjectCategories") == 0  # a refused chunk loads nothing
    assert fo.count("Currencies") == 3


def test_load_without_counterparts_leaves_finance_copies_to_the_sync() -> None:
    dv, fo = DataverseEmulator(), FinanceEmulator()
    counts = load(dv, fo, 4000, seed=3)
    assert fo.count("ProjCDSProjects") == fo.count("ProjCDSTasks") == 0
    assert dv.count("msdyn_projects") == counts["msdyn_projects"] > 0
    assert fo.count("ProjExpenseExports") == counts["ProjExpenseExports"] > 0


class Recording:
    """Passes every call to the real emulator and remembers the chunk sizes."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[tuple[str, int]] = []

    def load_rows(self, entity_set: str, rows: list[dict[str, Any]], **kw: Any) -> Any:
        self.calls.append((entity_set, len(rows)))
        return self.target.load_rows(entity_set, rows, **kw)


def test_load_streams_in_chunks_of_one_entity_set() -> None:
    dv, fo = Recording(DataverseEmulator()), Recording(FinanceEmulator())
    counts = load(dv, fo, 8000, seed=5, batch=700)
    calls = dv.calls + fo.calls
    assert max(n for _, n in calls) == 700
    assert sum(n for _, n in calls) == sum(counts.values())
    actual_chunks = [n for s, n in dv.calls if s == "msdyn_actuals"]
    assert len(actual_chunks) == -(-counts["msdyn_actuals"] // 700)
    with pytest.raises(ValueError):
        load(dv, fo, 10, seed=5, batch=0)


def test_same_seed_loads_the_same_rows() -> None:
    a_dv, a_fo, b_dv, b_fo = DataverseEmulator(), FinanceEmulator(), DataverseEmulator(), FinanceEmulator()
    load(a_dv, a_fo, 2000, seed=9)
    load(b_dv, b_fo, 2000, seed=9)

    def content(emu: Any, entity_set: str) -> list[dict[str, Any]]:
        drop = {"createdon", "modifiedon", "versionnumber", "ModifiedDateTime"}
        return sorted(({k: v for k, v in r.items() if k not in drop} for r in emu.rows(entity_set)), key=repr)

    for entity_set in ("msdyn_actuals", "msdyn_projects", "accounts"):
        assert content(a_dv, entity_set) == content(b_dv, entity_set)
    for entity_set in ("ProjExpenseExports", "ExchangeRates"):
        assert content(a_fo, entity_set) == content(b_fo, entity_set)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    dv = dataverse.start(token=TOKEN)
    try:
        fo = finance.start(token=TOKEN, default_company="uspm")
        try:
            yield dv, fo
        finally:
            fo.stop()
    finally:
        dv.stop()


def test_loaded_rows_are_served_over_http_and_their_lookups_resolve(
        servers: tuple[RunningServer, RunningServer]) -> None:
    dv_server, fo_server = servers
    counts = load(dv_server.app.state.emulator, fo_server.app.state.emulator, 3000, seed=31,
                  counterparts=True, validate=True)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    with httpx.Client(base_url=dv_server.url, headers=headers, timeout=10) as c:
        r = c.get("/api/data/v9.2/msdyn_actuals", params={"$top": "5", "$count": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["@odata.count"] == counts["msdyn_actuals"]
        actual = body["value"][0]
        project = c.get(f"/api/data/v9.2/msdyn_projects({actual['_msdyn_project_value']})")
        assert project.status_code == 200
        task = c.get(f"/api/data/v9.2/msdyn_projecttasks({actual['_msdyn_task_value']})")
        assert task.status_code == 200 and task.json()["_msdyn_project_value"] == project.json()["msdyn_projectid"]
        company = c.get(f"/api/data/v9.2/cdm_companies({project.json()['_msdyn_company_value']})")
        by_key = c.get(f"/api/data/v9.2/msdyn_projects(msdyn_projectnumber='{project.json()['msdyn_projectnumber']}',"
                       f"_msdyn_company_value={project.json()['_msdyn_company_value']})")
        assert company.status_code == 200 and by_key.status_code == 200, by_key.text
    with httpx.Client(base_url=fo_server.url, headers=headers, timeout=10) as c:
        r = c.get("/data/ProjExpenseExports", params={"$top": "1", "cross-company": "true"})
        assert r.status_code == 200, r.text
        expense = r.json()["value"][0]
        q = c.get("/data/ProjCDSProjects", params={
            "$filter": f"ProjectID eq '{expense['ProjectId']}' and dataAreaId eq '{expense['dataAreaId']}'",
            "cross-company": "true"})
        assert q.status_code == 200 and len(q.json()["value"]) == 1
