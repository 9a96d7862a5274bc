"""The Dataverse emulator's Project Operations flows over real HTTP: actuals from expenses, vendor
invoices and confirmed proformas, transaction connections, notifications, and the summary-task check."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox import dataverse

TOKEN = "t"
API = "/api/data/v9.2/"


@pytest.fixture
def dv():
    server = dataverse.start(port=0, token=TOKEN)
    client = httpx.Client(base_url=server.url + API, headers={"Authorization": f"Bearer {TOKEN}"})
    seen: list[tuple[str, str]] = []
    server.app.state.emulator.register_service_bus(
        lambda body, props: seen.append((props["http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName"],
                                         props["http://schemas.microsoft.com/xrm/2011/Claims/RequestName"])))
    yield client, server, seen
    client.close()
    server.stop()


def create(client: httpx.Client, entity_set: str, body: dict[str, Any]) -> str:
    r = client.post(entity_set, json=body)
    assert r.status_code == 204, r.text
    return r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def setup(client: httpx.Client) -> dict[str, str]:
    ids = {"usd": create(client, "transactioncurrencies", {"currencyname": "US dollar", "isocurrencycode": "USD"}),
           "co": create(client, "cdm_companies", {"cdm_companycode": "USPM", "cdm_name": "Contoso"})}
    co = {"msdyn_company@odata.bind": f"/cdm_companies({ids['co']})"}
    usd = {"transactioncurrencyid@odata.bind": f"/transactioncurrencies({ids['usd']})"}
    ids["project"] = create(client, "msdyn_projects", {"msdyn_subject": "Move", "msdyn_projectnumber": "P-1", **co})
    proj = {"msdyn_project@odata.bind": f"/msdyn_projects({ids['project']})"}
    ids["parent"] = create(client, "msdyn_projecttasks", {"msdyn_subject": "Phase", "msdyn_wbsid": "1", **proj, **co})
    ids["task"] = create(client, "msdyn_projecttasks", {
        "msdyn_subject": "Pack", "msdyn_wbsid": "1.1", **proj, **co,
        "msdyn_parenttask@odata.bind": f"/msdyn_projecttasks({ids['parent']})"})
    ids["contract"] = create(client, "salesorders", {"name": "PC-1", "ordernumber": "PC-1", **co, **usd})
    ids["line"] = create(client, "salesorderdetails", {
        "msdyn_lineid": "CL-1", "salesorderid@odata.bind": f"/salesorders({ids['contract']})", **proj, **co})
    ids["co_bind"], ids["usd_bind"] = str(co), str(usd)
    return ids


def actuals(client: httpx.Client, flt: str) -> list[dict[str, Any]]:
    return list(client.get("msdyn_actuals", params={"$filter": flt}).json()["value"])


def test_expense_approval_creates_cost_and_unbilled_sales_actuals_linked(dv):
    client, server, seen = dv
    ids = setup(client)
    exp = create(client, "msdyn_expenses", {
        "msdyn_externalexpenseid": "EXP-1", "msdyn_name": "Hotel", "msdyn_amount": 180, "msdyn_quantity": 1,
        "msdyn_transactiondate": "2025-02-10", "msdyn_expensestatus": 192350002,
        "msdyn_company@odata.bind": f"/cdm_companies({ids['co']})",
        "msdyn_project@odata.bind": f"/msdyn_projects({ids['project']})",
        "msdyn_projecttask@odata.bind": f"/msdyn_projecttasks({ids['task']})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({ids['usd']})"})
    r = client.post("../../../_emulator/flows/run", json={"flow": "approve-expenses"})
    assert r.status_code == 200, r.text
    assert r.json()["value"][0]["processed"] == 1
    made = actuals(client, f"_msdyn_expense_value eq {exp}")
    by_type = {a["msdyn_transactiontypecode"]: a for a in made}
    assert set(by_type) == {192350000, 192350005}
    cost, sales = by_type[192350000], by_type[192350005]
    assert (float(cost["msdyn_amount"]), cost["msdyn_transactionclassification"], cost["msdyn_accountingdate"],
            cost["_msdyn_company_value"], cost["_msdyn_task_value"]) == (180.0, 192350001, "2025-02-10", ids["co"],
                                                                         ids["task"])
    assert sales["_msdyn_contractline_value"] == ids["line"]
    [conn] = client.get("msdyn_transactionconnections").json()["value"]
    assert (conn["msdyn_transaction1"], conn["msdyn_transaction2"], conn["msdyn_transaction1role"],
            conn["msdyn_transaction2role"]) == (cost["msdyn_actualid"], sales["msdyn_actualid"], 192350000, 192350001)
    # idempotent: a second run creates nothing
    assert server.app.state.emulator.run_flow("approve-expenses")[0]["processed"] == 0
    time.sleep(0.1)
    assert ("msdyn_actual", "Create") in seen and ("msdyn_transactionconnection", "Create") in seen


def test_an_expense_on_a_summary_task_is_refused_with_the_documented_reason(dv):
    client, _, _ = dv
    ids = setup(client)
    r = client.post("msdyn_expenses", json={
        "msdyn_externalexpenseid": "EXP-2", "msdyn_company@odata.bind": f"/cdm_companies({ids['co']})",
        "msdyn_projecttask@odata.bind": f"/msdyn_projecttasks({ids['parent']})"})
    assert r.status_code == 400
    assert "Could not resolve project task for export expense" in r.text and "'Phase' is a summary task" in r.text


def test_vendor_invoice_approval_creates_material_actuals(dv):
    client, _, _ = dv
    ids = setup(client)
    inv = create(client, "msdyn_projectvendorinvoices", {
        "msdyn_externalinvoice": "VI-1", "msdyn_owningcompany@odata.bind": f"/cdm_companies({ids['co']})"})
    line = create(client, "msdyn_projectvendorinvoicelines", {
        "msdyn_externalinvoiceline": "VI-1-1", "msdyn_quantity": 3, "msdyn_price": 100, "msdyn_amount": 300,
        "msdyn_transactiondate": "2025-02-20", "msdyn_vendorinvoice@odata.bind": f"/msdyn_projectvendorinvoices({inv})",
        "msdyn_owningcompany@odata.bind": f"/cdm_companies({ids['co']})",
        "msdyn_project@odata.bind": f"/msdyn_projects({ids['project']})"})
    client.post("../../../_emulator/flows/run", json={"flow": "approve-vendor-invoices"})
    made = actuals(client, f"_msdyn_vendorinvoiceline_value eq {line}")
    assert sorted((a["msdyn_transactiontypecode"], a["msdyn_transactionclassification"], float(a["msdyn_amount"]))
                  for a in made) == [(192350000, 192350002, 300.0), (192350005, 192350002, 300.0)]
    assert client.get(f"msdyn_projectvendorinvoices({inv})").json()["msdyn_invoicestatus"] == 192350001


def test_confirming_a_proforma_creates_billed_sales_and_a_skip_sync_reversal(dv):
    client, server, _ = dv
    ids = setup(client)
    unbilled = create(client, "msdyn_actuals", {
        "msdyn_description": "Packing", "msdyn_transactiontypecode": 192350005, "msdyn_transactionclassification":
        192350000, "msdyn_quantity": 4, "msdyn_price": 50, "msdyn_amount": 200, "msdyn_skipsync": False,
        "msdyn_project@odata.bind": f"/msdyn_projects({ids['project']})",
        "msdyn_contract@odata.bind": f"/salesorders({ids['contract']})",
        "msdyn_contractline@odata.bind": f"/salesorderdetails({ids['line']})"})
    inv = create(client, "invoices", {"name": "Feb", "invoicenumber": "INV-1", "msdyn_invoicedate": "2025-02-28",
                                      "salesorderid@odata.bind": f"/salesorders({ids['contract']})",
                                      "transactioncurrencyid@odata.bind": f"/transactioncurrencies({ids['usd']})"})
    assert server.app.state.emulator.run_flow("confirm-proformas")[0]["processed"] == 0  # still a draft
    assert client.patch(f"invoices({inv})", json={"msdyn_proformastatus": 192350001}).status_code == 204
    assert server.app.state.emulator.run_flow("confirm-proformas")[0]["processed"] == 1
    made = actuals(client, f"_msdyn_invoice_value eq {inv}")
    summary = sorted((a["msdyn_transactiontypecode"], float(a["msdyn_amount"]), a["msdyn_skipsync"]) for a in made)
    assert summary == [(192350005, -200.0, True), (192350006, 200.0, False)]
    billed = next(a for a in made if a["msdyn_transactiontypecode"] == 192350006)
    links = {(c["msdyn_transaction1"], c["msdyn_transaction2"])
             for c in client.get("msdyn_transactionconnections").json()["value"]}
    assert (unbilled, billed["msdyn_actualid"]) in links and len(links) == 2
    assert server.app.state.emulator.run_flow("all")[2]["processed"] == 0  # billed once
