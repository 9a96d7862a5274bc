"""Change tracking: Prefer: odata.track-changes, delta links, deletions, paging, expiry."""

from __future__ import annotations

from typing import Any

import httpx
from dvhelpers import assert_error

from sandbox import dataverse
from sandbox.dataverse import DataverseEmulator

TRACK = {"Prefer": "odata.track-changes"}


def _all_pages(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    values: list[dict[str, Any]] = []
    pages = 0
    while True:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        values += body["value"]
        pages += 1
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            continue
        return values, body["@odata.deltaLink"]


def test_initial_read_then_changes_and_deletes(client: httpx.Client, emu: DataverseEmulator) -> None:
    ids = emu.load_rows("cdm_companies", [{"cdm_companycode": f"C{i}"} for i in range(7)])
    r = client.get("cdm_companies?$select=cdm_companycode", headers=TRACK)
    assert r.headers["Preference-Applied"].startswith("odata.track-changes")
    first, delta = _all_pages(client, "cdm_companies?$select=cdm_companycode",
                              {"Prefer": "odata.track-changes,odata.maxpagesize=3"})
    assert len(first) == 7 and "$deltatoken=" in delta
    empty = client.get(delta).json()
    assert empty["value"] == [] and empty["@odata.context"].endswith("/$delta")
    client.patch(f"cdm_companies({ids[0]})", json={"cdm_name": "changed"})
    client.post("cdm_companies", json={"cdm_companycode": "NEW"})
    client.delete(f"cdm_companies({ids[1]})")
    client.delete(f"cdm_companies({ids[2]})")
    changes, delta2 = _all_pages(client, delta, {"Prefer": "odata.maxpagesize=1"})  # 4 pages of 1
    changed = {v["cdm_companycode"] for v in changes if "cdm_companycode" in v}
    deleted = {v["id"] for v in changes if v.get("reason") == "deleted"}
    assert changed == {"C0", "NEW"} and deleted == {ids[1], ids[2]}
    for v in changes:
        if "reason" in v:
            assert v["@odata.context"].endswith("$metadata#cdm_companies/$deletedEntity")
            assert set(v) == {"@odata.context", "id", "reason"}
        else:
            assert v["@odata.etag"].startswith('W/"')
    assert client.get(delta2).json()["value"] == []


def test_track_changes_refuses_filter_orderby_expand_top(client: httpx.Client) -> None:
    for option in ("$filter=cdm_name eq 'x'", "$orderby=cdm_name", "$expand=msdyn_defaultcurrency", "$top=1"):
        name = option.split("=")[0][1:]
        assert_error(client.get(f"cdm_companies?{option}", headers=TRACK), 400, None,
                     f'The "${name}" query parameter isn\'t supported when Change Tracking is enabled.')


def test_expired_tokens_force_a_full_read(client: httpx.Client, emu: DataverseEmulator, server: Any) -> None:
    emu.load_rows("cdm_companies", [{"cdm_companycode": "A"}])
    delta = client.get("cdm_companies", headers=TRACK).json()["@odata.deltaLink"]
    assert client.get(delta).status_code == 200
    assert client.post(server.url + "/_emulator/expire-delta-tokens").status_code == 204
    assert_error(client.get(delta), 400, None, "expired")
    fresh = client.get("cdm_companies", headers=TRACK).json()
    assert len(fresh["value"]) == 1 and client.get(fresh["@odata.deltaLink"]).status_code == 200
    assert_error(client.get("cdm_companies?$deltatoken=bogus"), 400)


def test_tokens_older_than_n_changes_expire() -> None:
    server = dataverse.start(delta_token_max_changes=3)
    try:
        with httpx.Client(base_url=server.url + "/api/data/v9.2/",
                          headers={"Authorization": "Bearer dev-token"}) as c:
            delta = c.get("cdm_companies", headers=TRACK).json()["@odata.deltaLink"]
            for i in range(3):
                c.post("cdm_companies", json={"cdm_companycode": f"X{i}"})
            assert len(c.get(delta).json()["value"]) == 3
            c.post("cdm_companies", json={"cdm_companycode": "X4"})
            assert c.get(delta).status_code == 400
    finally:
        server.stop()
