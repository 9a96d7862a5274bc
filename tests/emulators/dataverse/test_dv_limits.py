"""Service protection (429 + Retry-After), injected faults, stats and $metadata."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import httpx
from dvhelpers import assert_error

from sandbox.dataverse import DataverseEmulator

CATALOG_SETS = ["cdm_companies", "msdyn_currencyexchangerates", "msdyn_ledgers", "cdm_workers", "accounts",
                "msdyn_vendors", "bookableresourcecategories", "msdyn_transactioncategories", "salesorders",
                "salesorderdetails", "msdyn_contractlinescheduleofvalues", "msdyn_projectcontractsplitbillingrules",
                "msdyn_projects", "msdyn_projecttasks", "bookableresources", "msdyn_resourceassignments",
                "msdyn_estimatelines", "msdyn_actuals", "msdyn_transactionconnections", "invoices",
                "msdyn_customerinvoices", "msdyn_expensecategories", "msdyn_expenses", "msdyn_projectvendorinvoices",
                "msdyn_projectvendorinvoicelines"]


def test_request_limit_gives_429_with_retry_after(client: httpx.Client, emu: DataverseEmulator,
                                                  server: Any) -> None:
    r = client.put(server.url + "/_emulator/throttle", json={"requests_per_window": 3, "window_seconds": 60})
    assert r.status_code == 200
    assert [client.get("cdm_companies").status_code for _ in range(3)] == [200, 200, 200]
    r = client.get("cdm_companies")
    err = assert_error(r, 429, "0x80072322", "Number of requests exceeded the limit of 3 over time window of 60")
    assert err and int(r.headers["Retry-After"]) >= 1
    assert client.get(server.url + "/_emulator/stats").json()["throttled"] == 1  # admin API is exempt


def test_concurrency_limit_message(emu: DataverseEmulator) -> None:
    emu.set_throttle(None, concurrent=1)
    assert emu.throttle is not None and emu.throttle.acquire() is None  # one request in flight
    try:
        resp = emu.throttled_response(1.0)
        assert resp.status_code == 429 and b"0x80072326" in resp.body and resp.headers["Retry-After"] == "1"
    finally:
        emu.throttle.release()


def test_faults_injected_and_counted(client: httpx.Client, emu: DataverseEmulator, server: Any) -> None:
    admin = server.url + "/_emulator/faults"
    assert client.put(admin, json={"spec": "error5xx@PATCH/cdm_companies*=503"}).status_code == 200
    assert client.get(admin).json()["spec"] == "error5xx@PATCH/cdm_companies*=503"
    r = client.patch("cdm_companies(cdm_companycode='F1')", json={"cdm_name": "x"})
    assert r.status_code == 503 and "error" in r.json()
    assert client.get("cdm_companies").status_code == 200
    assert client.put(admin, json={"spec": "bogus:2"}).status_code == 400
    stats = client.get(server.url + "/_emulator/stats").json()
    assert stats["faults"] == {"error5xx": 1} and stats["requests"]["PATCH"] == {"503": 1}
    assert stats["requests"]["GET"]["200"] >= 1
    assert client.put(admin, json={"spec": None}).status_code == 200
    assert client.patch("cdm_companies(cdm_companycode='F1')", json={"cdm_name": "x"}).status_code == 204
    assert client.post(server.url + "/_emulator/reset").status_code == 204
    assert emu.count("cdm_companies") == 0


def test_metadata_covers_catalog_tables(client: httpx.Client) -> None:
    r = client.get("$metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
    sets = {e.get("Name"): e.get("EntityType") for e in root.iterfind(".//edm:EntitySet", ns)}
    for name in CATALOG_SETS:
        assert name in sets, name
    account = root.find(".//edm:EntityType[@Name='account']", ns)
    assert account is not None
    props = {p.get("Name"): p.get("Type") for p in account.iterfind("edm:Property", ns)}
    assert props["_msdyn_company_value"] == "Edm.Guid" and props["name"] == "Edm.String"
    navs = {n.get("Name"): n.get("Type") for n in account.iterfind("edm:NavigationProperty", ns)}
    assert navs["msdyn_company"] == "Microsoft.Dynamics.CRM.cdm_company"
    assert b"OData.Community.Keys.V1.AlternateKeys" in r.content
    service_doc = client.get("").json()
    assert {v["name"] for v in service_doc["value"]} >= set(CATALOG_SETS)
