"""The two lookups behind issue 7's last failure mode, as Dataverse answers them: the unit of measure of
a vendor invoice line (``msdyn_unit`` -> ``uom`` by its ``name`` key) and the vendor of the invoice
(``msdyn_vendor`` -> ``account`` by account number and company, the row documented dual-write errors
name: "Unable to lookup accounts with values {USPM-000022,<guid>}", po-maps.md §6)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulators.dataverse.dvhelpers import assert_error

REP = {"Prefer": "return=representation"}


def _invoice(client: httpx.Client, company: dict[str, Any], vendor_bind: str | None) -> httpx.Response:
    body = {"msdyn_externalinvoice": "VI-1", "msdyn_owningcompany@odata.bind": f"/cdm_companies({company['cdm_companyid']})"}
    if vendor_bind:
        body["msdyn_vendor@odata.bind"] = vendor_bind
    return client.post("msdyn_projectvendorinvoices", json=body, headers=REP)


def test_line_unit_binds_by_uom_name_and_a_missing_unit_names_the_table(client: httpx.Client,
                                                                         company: dict[str, Any]) -> None:
    invoice = _invoice(client, company, None).json()["msdyn_projectvendorinvoiceid"]
    hour = client.post("uoms", json={"name": "Hour", "quantity": 1}, headers=REP).json()["uomid"]

    def line(n: int, unit: str) -> httpx.Response:
        return client.post("msdyn_projectvendorinvoicelines", headers=REP, json={
            "msdyn_externalinvoiceline": f"VI-1-{n}", "msdyn_quantity": 2,
            "msdyn_vendorinvoice@odata.bind": f"/msdyn_projectvendorinvoices({invoice})",
            "msdyn_unit@odata.bind": f"/uoms(name='{unit}')"})

    r = line(1, "Hour")
    assert r.status_code == 201 and r.json()["_msdyn_unit_value"] == hour
    assert_error(line(2, "Box"), 404, "0x80040217", "does not exist in uom entity (key values: name:Box)")
    assert client.get("msdyn_projectvendorinvoicelines", params={"$filter": "msdyn_externalinvoiceline eq 'VI-1-2'"}
                      ).json()["value"] == []
    client.post("uoms", json={"name": "Box", "quantity": 1})  # the fix: the unit exists, the same write lands
    assert line(2, "Box").status_code == 201


def test_invoice_vendor_binds_to_the_vendor_account_in_the_company(client: httpx.Client,
                                                                  company: dict[str, Any]) -> None:
    bind = f"/accounts(accountnumber='USPM-000022',_msdyn_company_value={company['cdm_companyid']})"
    assert_error(_invoice(client, company, bind), 404, "0x80040217", "does not exist in account entity")
    account = client.post("accounts", headers=REP, json={
        "name": "Contoso Supplies", "accountnumber": "USPM-000022",
        "msdyn_company@odata.bind": f"/cdm_companies({company['cdm_companyid']})"}).json()["accountid"]
    r = _invoice(client, company, bind)
    assert r.status_code == 201 and r.json()["_msdyn_vendor_value"] == account
