"""Collection reads: $filter (incl. enum literals and wildcards), $select, $orderby, $top, $skip,
$count, server paging with @odata.nextLink, and cross-company."""

from __future__ import annotations

import httpx

from sandbox.finance import FinanceEmulator
from tests.emulators.finance.conftest import seed_basics


def _projects(emu: FinanceEmulator, n: int, company: str = "usmf") -> None:
    emu.load_rows("ProjCDSProjects", (
        {"dataAreaId": company, "ProjectID": f"P-{i:03d}", "ProjectName": f"Project {i}",
         "ProjectType": "TimeMaterial" if i % 2 else "FixedPrice", "StartDate": f"2024-01-{(i % 28) + 1:02d}"}
        for i in range(n)))


def _all(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[dict]:
    rows: list[dict] = []
    r = client.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        rows.extend(body["value"])
        if "@odata.nextLink" not in body:
            return rows
        r = client.get(body["@odata.nextLink"])


def test_default_company_only_unless_cross_company(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    assert [r["ProjectID"] for r in _all(client, "/ProjCDSProjects")] == ["P-1"]
    cross = _all(client, "/ProjCDSProjects", {"cross-company": "true"})
    assert sorted(r["dataAreaId"] for r in cross) == ["gbsi", "usmf"]
    one = _all(client, "/ProjCDSProjects", {"cross-company": "true", "$filter": "dataAreaId eq 'GBSI'"})
    assert [r["ProjectID"] for r in one] == ["P-9"]


def test_paging_with_next_link_visits_every_row_once(client: httpx.Client, emulator: FinanceEmulator) -> None:
    _projects(emulator, 23)
    first = client.get("/ProjCDSProjects").json()
    assert len(first["value"]) == 5 and "$skip=5" in first["@odata.nextLink"]
    ids = [r["ProjectID"] for r in _all(client, "/ProjCDSProjects")]
    assert ids == [f"P-{i:03d}" for i in range(23)]
    small = client.get("/ProjCDSProjects", headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert len(small["value"]) == 2


def test_filter_enum_literal_and_plain_comparisons(client: httpx.Client, emulator: FinanceEmulator) -> None:
    _projects(emulator, 10)
    flt = "ProjectType eq Microsoft.Dynamics.DataEntities.ProjType'FixedPrice'"
    ids = [r["ProjectID"] for r in _all(client, "/ProjCDSProjects", {"$filter": flt})]
    assert ids == ["P-000", "P-002", "P-004", "P-006", "P-008"]
    ne = _all(client, "/ProjCDSProjects",
              {"$filter": "ProjectType ne Microsoft.Dynamics.DataEntities.ProjType'FixedPrice'"})
    assert len(ne) == 5
    both = _all(client, "/ProjCDSProjects", {"$filter": "StartDate ge 2024-01-05T00:00:00Z and "
                                                         "(ProjectID eq 'P-004' or ProjectID eq 'P-007')"})
    assert [r["ProjectID"] for r in both] == ["P-004", "P-007"]


def test_filter_wildcards(client: httpx.Client, emulator: FinanceEmulator) -> None:
    _projects(emulator, 12)
    assert len(_all(client, "/ProjCDSProjects", {"$filter": "ProjectName eq 'Project 1*'"})) == 3  # 1,10,11
    assert len(_all(client, "/ProjCDSProjects", {"$filter": "ProjectName eq '*1'"})) == 2  # 1, 11
    assert len(_all(client, "/ProjCDSProjects", {"$filter": "ProjectID eq '*-00*'"})) == 10
    assert len(_all(client, "/ProjCDSProjects", {"$filter": "ProjectName ne 'Project 1*'"})) == 9


def test_select_orderby_top_skip_count(client: httpx.Client, emulator: FinanceEmulator) -> None:
    _projects(emulator, 8)
    body = client.get("/ProjCDSProjects", params={
        "$select": "ProjectID,ProjectType", "$orderby": "ProjectType asc,ProjectID desc",
        "$top": "3", "$skip": "1", "$count": "true"}).json()
    assert body["@odata.count"] == 8
    assert [set(r) for r in body["value"]] == [{"@odata.etag", "ProjectID", "ProjectType"}] * 3
    assert [r["ProjectID"] for r in body["value"]] == ["P-004", "P-002", "P-000"]
    assert "@odata.nextLink" not in body
    # $top larger than a page: the next link carries the remaining $top
    capped = client.get("/ProjCDSProjects", params={"$top": "7"}).json()
    assert len(capped["value"]) == 5 and "$top=2" in capped["@odata.nextLink"]
    assert len(_all(client, "/ProjCDSProjects", {"$top": "7"})) == 7
    count = client.get("/ProjCDSProjects/$count", params={"$filter": "ProjectType eq 'FixedPrice'"})
    assert count.status_code == 200 and count.text == "4"


def test_watermark_poll_by_modified_datetime(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    mark = client.get("/ProjCDSProjects", params={"cross-company": "true", "$orderby": "ModifiedDateTime desc",
                                                  "$top": "1"}).json()["value"][0]["ModifiedDateTime"]
    changed = _all(client, "/ProjCDSProjects", {"cross-company": "true", "$filter": f"ModifiedDateTime ge {mark}"})
    assert {r["ProjectID"] for r in changed} == {"P-1", "P-9"}


def test_bad_query_options_are_400(client: httpx.Client, emulator: FinanceEmulator) -> None:
    for params in ({"$filter": "Nope eq 1"}, {"$filter": "ProjectID eq"}, {"$filter": "ProjectID eq 5"},
                   {"$filter": "ProjectType eq Microsoft.Dynamics.DataEntities.ProjType'Nope'"},
                   {"$filter": "ProjectType eq Microsoft.Dynamics.DataEntities.NoYes'Yes'"},
                   {"$filter": "StartDate gt 'x'"}, {"$select": "Nope"}, {"$orderby": "Nope"},
                   {"$orderby": "ProjectID sideways"}, {"$top": "-1"}, {"$skip": "x"}, {"$count": "maybe"},
                   {"$expand": "Tasks"}, {"$apply": "groupby"}):
        r = client.get("/ProjCDSProjects", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["innererror"]["message"], params
