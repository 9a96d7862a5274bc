"""Collection queries: $select, $filter, $orderby, $top, $count, $expand, server-driven paging."""

from __future__ import annotations

from typing import Any

import httpx
from dvhelpers import assert_error

from sandbox.dataverse import DataverseEmulator


def _seed(emu: DataverseEmulator, n: int = 12) -> str:
    [cid] = emu.load_rows("cdm_companies", [{"cdm_companycode": "USPM"}])
    emu.load_rows("msdyn_projects", [
        {"msdyn_subject": f"Project {i:02d}" + (" O'Neil" if i == 3 else ""), "msdyn_projectnumber": f"PRJ-{i:02d}",
         "_msdyn_company_value": cid if i % 2 == 0 else None,
         "msdyn_scheduledstart": f"2024-01-{i + 1:02d}T08:00:00Z", "msdyn_totalplannedcost": i * 100.5,
         "msdyn_projectstage": 192350000 + (i % 3)} for i in range(n)])
    return cid


def _numbers(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [v["msdyn_projectnumber"] for v in r.json()["value"]]


def test_select_filter_orderby_top(client: httpx.Client, emu: DataverseEmulator) -> None:
    cid = _seed(emu)
    r = client.get("msdyn_projects?$select=msdyn_projectnumber,msdyn_subject&$filter=msdyn_totalplannedcost ge 900"
                   "&$orderby=msdyn_projectnumber desc")
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#msdyn_projects(msdyn_projectnumber,msdyn_subject)")
    assert _numbers(r) == ["PRJ-11", "PRJ-10", "PRJ-09"]
    assert set(body["value"][0]) == {"@odata.etag", "msdyn_projectnumber", "msdyn_subject", "msdyn_projectid"}
    q = "msdyn_projects?$select=msdyn_projectnumber&$orderby=msdyn_projectnumber&$filter="
    assert _numbers(client.get(q + f"_msdyn_company_value eq {cid} and msdyn_projectstage eq 192350000")) == \
        ["PRJ-00", "PRJ-06"]
    assert _numbers(client.get(q + "_msdyn_company_value eq null and not (msdyn_projectstage ne 192350001)")) == \
        ["PRJ-01", "PRJ-07"]
    assert _numbers(client.get(q + "contains(msdyn_subject,'o''neil') or startswith(msdyn_projectnumber,'PRJ-1')")) \
        == ["PRJ-03", "PRJ-10", "PRJ-11"]
    assert _numbers(client.get(q + "msdyn_scheduledstart lt 2024-01-03T00:00:00Z")) == ["PRJ-00", "PRJ-01"]
    assert _numbers(client.get(q + "msdyn_subject eq 'PROJECT 05'")) == ["PRJ-05"]
    assert _numbers(client.get("msdyn_projects?$orderby=msdyn_totalplannedcost desc&$top=2")) == ["PRJ-11", "PRJ-10"]
    r = client.get("msdyn_projects?$filter=msdyn_projectstage eq 192350002&$count=true&$top=1")
    assert r.json()["@odata.count"] == 4 and len(r.json()["value"]) == 1
    count = client.get("msdyn_projects/$count?$filter=msdyn_projectstage eq 192350002")
    assert count.status_code == 200 and count.text == "4"


def test_filter_errors(client: httpx.Client, emu: DataverseEmulator) -> None:
    _seed(emu, 2)
    assert_error(client.get("msdyn_projects?$filter=nope eq 1"), 400, "0x80060888", "Could not find a property")
    assert_error(client.get("msdyn_projects?$filter=msdyn_subject eq 5"), 400, "0x80060888", "Edm.String")
    assert_error(client.get("msdyn_projects?$filter=msdyn_subject eq 'a' and"), 400, "0x80060888")
    assert_error(client.get("msdyn_projects?$orderby=nope"), 400, "0x80060888")


def test_expand_single_valued_navigation_with_nested_select(client: httpx.Client, emu: DataverseEmulator) -> None:
    cid = _seed(emu, 3)
    r = client.get("msdyn_projects?$select=msdyn_projectnumber,_msdyn_company_value"
                   "&$expand=msdyn_company($select=cdm_companycode)&$orderby=msdyn_projectnumber")
    assert r.status_code == 200, r.text
    v = r.json()["value"]
    assert v[0]["msdyn_company"] == {"@odata.etag": v[0]["msdyn_company"]["@odata.etag"],
                                     "cdm_companycode": "USPM", "cdm_companyid": cid}
    assert v[1]["msdyn_company"] is None and v[1]["_msdyn_company_value"] is None
    one = client.get(f"msdyn_projects({v[0]['msdyn_projectid']})?$expand=msdyn_company($select=cdm_companycode)")
    assert one.json()["msdyn_company"]["cdm_companycode"] == "USPM"
    assert_error(client.get("msdyn_projects?$expand=msdyn_company($select=nope)"), 400, "0x80060888")
    assert_error(client.get("msdyn_projects?$expand=msdyn_subject"), 400, "0x80060888")


def test_paging_across_pages_with_opaque_skiptoken(client: httpx.Client, emu: DataverseEmulator) -> None:
    _seed(emu, 12)
    seen: list[str] = []
    url: str | None = "msdyn_projects?$select=msdyn_projectnumber&$filter=msdyn_totalplannedcost ge 0"
    pages = 0
    while url:
        r = client.get(url, headers={"Prefer": "odata.maxpagesize=5"})
        assert r.status_code == 200 and r.headers["Preference-Applied"] == "odata.maxpagesize=5"
        body: dict[str, Any] = r.json()
        assert len(body["value"]) <= 5
        seen += [v["msdyn_projectnumber"] for v in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            assert "$skiptoken=" in url and "$select=msdyn_projectnumber" in url
        pages += 1
    assert pages == 3 and sorted(seen) == [f"PRJ-{i:02d}" for i in range(12)] and len(set(seen)) == 12
    ordered = []
    url = "msdyn_projects?$select=msdyn_projectnumber&$orderby=msdyn_totalplannedcost desc"
    while url:
        body = client.get(url, headers={"Prefer": "odata.maxpagesize=4"}).json()
        ordered += [v["msdyn_projectnumber"] for v in body["value"]]
        url = body.get("@odata.nextLink")
    assert ordered == [f"PRJ-{i:02d}" for i in reversed(range(12))]
    big = client.get("msdyn_projects", headers={"Prefer": "odata.maxpagesize=9000"})
    assert len(big.json()["value"]) == 12 and "Preference-Applied" not in big.headers
