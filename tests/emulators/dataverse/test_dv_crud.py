"""Create, read, upsert, delete, keys, lookups and error shapes over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from dvhelpers import assert_error

from sandbox.dataverse import DataverseEmulator


def test_create_returns_204_with_entity_id_or_201_with_body(client: httpx.Client) -> None:
    r = client.post("cdm_companies", json={"cdm_companycode": "USPM", "cdm_name": "US PM"})
    assert r.status_code == 204 and r.content == b""
    entity_id = r.headers["OData-EntityId"]
    assert entity_id.startswith(str(client.base_url).rstrip("/") + "/cdm_companies(")
    got = client.get(entity_id)
    assert got.status_code == 200
    body = got.json()
    assert body["cdm_companycode"] == "USPM" and body["@odata.etag"].startswith('W/"')
    assert body["@odata.context"].endswith("$metadata#cdm_companies/$entity")
    r = client.post("cdm_companies", json={"cdm_companycode": "DEMF"}, headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()["cdm_companycode"] == "DEMF"
    assert r.headers["Preference-Applied"] == "return=representation"


def test_get_by_id_alternate_key_and_composite_key_with_lookup(client: httpx.Client, company: dict[str, Any]) -> None:
    cid = company["cdm_companyid"]
    r = client.post("accounts", json={"name": "Contoso", "accountnumber": "C-1",
                                      "msdyn_company@odata.bind": f"/cdm_companies({cid})"},
                    headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    acc = r.json()
    assert acc["_msdyn_company_value"] == cid
    assert client.get(f"accounts({acc['accountid']})").json()["name"] == "Contoso"
    assert client.get(f"accounts(accountid={acc['accountid']})").json()["name"] == "Contoso"
    assert client.get("cdm_companies(cdm_companycode='uspm')").json()["cdm_companyid"] == cid  # case-insensitive
    by_key = client.get(f"accounts(accountnumber='C-1',_msdyn_company_value={cid})")
    assert by_key.status_code == 200 and by_key.json()["accountid"] == acc["accountid"]
    assert_error(client.get(f"accounts(accountnumber='C-2',_msdyn_company_value={cid})"), 404, "0x80040217",
                 "does not exist in account entity")
    assert_error(client.get(f"accounts({uuid.uuid4()})"), 404, "0x80040217", "Does Not Exist")


def test_invalid_keys_get_the_real_message(client: httpx.Client) -> None:
    for bad in ["accounts(name='x')", "accounts(accountnumber='C-1')", "accounts('abc')", "accounts(12)",
                "accounts(accountnumber=5,_msdyn_company_value=1)"]:
        assert_error(client.get(bad), 400, "0x80060888", "The key in the request URI is not valid for resource "
                                                         "'Microsoft.Dynamics.CRM.account'")


def test_patch_upserts_and_honours_if_match_if_none_match(client: httpx.Client) -> None:
    url = "cdm_companies(cdm_companycode='USSI')"
    rep = {"Prefer": "return=representation"}
    r = client.patch(url, json={"cdm_name": "US SI"}, headers=rep)
    assert r.status_code == 201 and r.json()["cdm_companycode"] == "USSI"  # key from the URL on create
    etag = r.json()["@odata.etag"]
    r = client.patch(url, json={"cdm_name": "US SI 2"}, headers=rep)
    assert r.status_code == 200 and r.json()["cdm_name"] == "US SI 2" and r.json()["@odata.etag"] != etag
    assert client.patch(url, json={"cdm_name": "3"}).status_code == 204
    assert_error(client.patch(url, json={"cdm_name": "x"}, headers={"If-None-Match": "*"}), 412, "0x80040237",
                 "A record with matching key values already exists.")
    assert_error(client.patch(url, json={"cdm_name": "x"}, headers={"If-Match": etag}), 412, "0x80060882",
                 "The version of the existing record doesn't match the RowVersion property provided.")
    current = client.get(url).json()["@odata.etag"]
    assert client.patch(url, json={"cdm_name": "4"}, headers={"If-Match": current}).status_code == 204
    assert_error(client.patch("cdm_companies(cdm_companycode='NONE')", json={"cdm_name": "x"},
                              headers={"If-Match": "*"}), 404, "0x80040217")
    assert client.get("cdm_companies(cdm_companycode='NONE')").status_code == 404
    r = client.patch("cdm_companies(cdm_companycode='NEW1')", json={"cdm_name": "n"},
                     headers={"If-None-Match": "*"})
    assert r.status_code == 204
    rid = str(uuid.uuid4())
    assert client.patch(f"cdm_companies({rid})", json={"cdm_companycode": "BYID"}).status_code == 204
    assert client.get(f"cdm_companies({rid})").json()["cdm_companycode"] == "BYID"


def test_versions_increase_globally(client: httpx.Client) -> None:
    versions = []
    for code in ("A1", "A2", "A1"):
        r = client.patch(f"cdm_companies(cdm_companycode='{code}')", json={"cdm_name": code},
                         headers={"Prefer": "return=representation"})
        versions.append(int(r.json()["versionnumber"]))
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_delete_by_id_and_key(client: httpx.Client) -> None:
    client.post("cdm_companies", json={"cdm_companycode": "DEL1"})
    assert client.delete("cdm_companies(cdm_companycode='DEL1')").status_code == 204
    assert_error(client.delete("cdm_companies(cdm_companycode='DEL1')"), 404, "0x80040217")
    r = client.post("cdm_companies", json={"cdm_companycode": "DEL2"})
    url = r.headers["OData-EntityId"]
    assert client.delete(url).status_code == 204
    assert_error(client.delete(url), 404, "0x80040217", "Does Not Exist")


def test_lookup_binding_by_key_and_missing_target(client: httpx.Client, company: dict[str, Any]) -> None:
    r = client.post("msdyn_projects", json={"msdyn_subject": "P1", "msdyn_projectnumber": "PRJ-1",
                                            "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USPM')"},
                    headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()["_msdyn_company_value"] == company["cdm_companyid"]
    missing = str(uuid.uuid4())
    assert_error(client.post("msdyn_projects", json={"msdyn_subject": "P2",
                                                     "msdyn_company@odata.bind": f"/cdm_companies({missing})"}),
                 404, "0x80040217", f"cdm_company With Id = {missing} Does Not Exist")
    assert_error(client.post("msdyn_projects", json={"msdyn_subject": "P2", "msdyn_company@odata.bind":
                                                     "/cdm_companies(cdm_companycode='NOPE')"}), 404, "0x80040217")
    assert_error(client.post("msdyn_projects", json={"msdyn_subject": "P2",
                                                     "msdyn_company@odata.bind": f"/accounts({missing})"}), 400)
    assert_error(client.post("msdyn_projects", json={"msdyn_subject": "P2", "_msdyn_company_value": missing}),
                 400, None, "Navigation properties")


def test_validation_errors(client: httpx.Client) -> None:
    assert_error(client.post("cdm_companies", json={"cdm_companycode": "X", "bogus": 1}), 400, "0x80060888",
                 "The property 'bogus' does not exist on type 'Microsoft.Dynamics.CRM.cdm_company'")
    assert_error(client.get("cdm_companies?$select=bogus"), 400, "0x80060888",
                 "Could not find a property named 'bogus' on type 'Microsoft.Dynamics.CRM.cdm_company'")
    assert_error(client.get("nosuchset"), 404, "0x8006088a", "Resource not found for the segment 'nosuchset'.")
    assert_error(client.post("cdm_companies", json={"cdm_companycode": "TOOLONG1"}), 400, "0x80044331",
                 "The length of the 'cdm_companycode' attribute of the 'cdm_company' entity exceeded the maximum "
                 "allowed length of '6'.")
    assert_error(client.post("cdm_companies", json={"cdm_name": "no code"}), 400, None, "cdm_companycode")
    assert_error(client.post("cdm_companies", json={"cdm_companycode": 5}), 400, "0x80060888", "Edm.String")
    assert_error(client.post("cdm_workers", json={"cdm_workernumber": "W1", "cdm_type": 3}), 400, None,
                 "outside the valid range")
    assert_error(client.post("cdm_workers", json={"cdm_workernumber": "W1", "statecode": "0"}), 400, None,
                 "Edm.Int32")
    assert_error(client.post("msdyn_projects", json={"msdyn_subject": "P", "msdyn_scheduledstart": "tuesday"}),
                 400, None, "Edm.DateTimeOffset")
    assert client.post("cdm_workers", json={"cdm_workernumber": "W1", "cdm_type": 754400000}).status_code == 204


def test_duplicate_alternate_key_is_412(client: httpx.Client) -> None:
    assert client.post("cdm_companies", json={"cdm_companycode": "DUP"}).status_code == 204
    err = assert_error(client.post("cdm_companies", json={"cdm_companycode": "dup"}), 412, "0x80060892")
    assert "cdm_companycode" in err["message"]


def test_bad_requests_never_500(client: httpx.Client) -> None:
    cases: list[tuple[str, str, Any]] = [
        ("POST", "cdm_companies", b"{not json"), ("POST", "cdm_companies", b"[1,2]"),
        ("PATCH", "cdm_companies(", b"{}"), ("GET", "cdm_companies?$filter=cdm_name eq", None),
        ("GET", "cdm_companies?$filter=cdm_name eq 5", None), ("GET", "cdm_companies?$top=-3", None),
        ("GET", "cdm_companies?$orderby=cdm_name sideways", None), ("GET", "cdm_companies?$expand=nope", None),
        ("GET", "cdm_companies?$skiptoken=garbage!!", None), ("PUT", "cdm_companies", b"{}"),
        ("DELETE", "cdm_companies", None), ("GET", "cdm_companies(cdm_companycode='a'/x)", None),
        ("POST", "$batch", b"nonsense"), ("GET", "cdm_companies?$filter=contains(cdm_name)", None),
        ("POST", "cdm_companies/Microsoft.Dynamics.CRM.UpsertMultiple", b'{"Targets": 3}'),
        ("GET", "cdm_companies/foo/bar", None), ("PATCH", "cdm_companies(00000000-0000-0000-0000-00000000000g)", b"{}"),
        ("GET", "cdm_companies?$filter=cdm_companyid eq 'x'", None),
        ("GET", "accounts?$filter=createdon gt 'yesterday'", None),
    ]
    for method, url, body in cases:
        r = client.request(method, url, content=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        assert "error" in r.json(), (method, url, r.text)


def test_auth_required_without_echoing_the_token(server: Any, emu: DataverseEmulator) -> None:
    url = server.url + "/api/data/v9.2/cdm_companies"
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401 and "error" in r.json()
        assert "wrong-token" not in r.text and "dev-token" not in r.text
    assert httpx.get(server.url + "/_emulator/stats").status_code == 401


def test_control_object_load_rows_count_rows(emu: DataverseEmulator, client: httpx.Client) -> None:
    ids = emu.load_rows("cdm_companies", [{"cdm_companycode": f"C{i}", "cdm_name": f"n{i}"} for i in range(50)])
    assert len(ids) == 50 and emu.count("cdm_companies") == 50
    rows = list(emu.rows("cdm_companies"))
    assert {r["cdm_companycode"] for r in rows} == {f"C{i}" for i in range(50)}
    assert len({r["versionnumber"] for r in rows}) == 50
    assert client.get(f"cdm_companies({ids[3]})").json()["cdm_companycode"] == "C3"
    try:
        emu.load_rows("cdm_companies", [{"cdm_companycode": "c1"}])
    except Exception as exc:
        assert getattr(exc, "status", None) == 412
    else:
        raise AssertionError("duplicate key accepted by load_rows")
    assert emu.count("cdm_companies") == 50
