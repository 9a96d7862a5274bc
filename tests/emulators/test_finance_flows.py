"""The Finance emulator's business flows over real HTTP: import from staging, posting, write-back,
business events, and the failure modes stored on the rows."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from sandbox import finance

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CO = "uspm"


@pytest.fixture
def fo():
    server = finance.start(port=0, token=TOKEN, event_retry_wait=0.01)
    events: list[dict[str, Any]] = []
    server.app.state.emulator.register_endpoint(publish=lambda body, props: events.append(json.loads(body)))
    client = httpx.Client(base_url=server.url, headers=AUTH, params={"cross-company": "true"})
    emu = server.app.state.emulator
    emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}, {"CurrencyCode": "EUR", "Name": "Euro"}])
    emu.load_rows("LegalEntities", [{"LegalEntityId": "USPM", "Name": "Contoso US", "AccountingCurrency": "USD"}])
    emu.load_rows("ExchangeRates", [{"RateTypeName": "Default", "FromCurrency": "EUR", "ToCurrency": "USD",
                                     "StartDate": "2025-01-01", "Rate": 1.1}])
    emu.load_rows("ProjCDSProjects", [{"dataAreaId": CO, "ProjectID": "P-1", "ProjectName": "Move",
                                       "ProjectType": "TimeMaterial"}])
    emu.load_rows("ProjectCategories", [{"dataAreaId": CO, "CategoryId": "Travel", "CategoryName": "Travel",
                                         "TransactionType": "Expense"}])
    emu.load_rows("SalesTaxGroups", [{"dataAreaId": CO, "TaxGroup": "WA", "Percentage": 10.0}])
    emu.load_rows("ProjCDSProjectContracts", [{"dataAreaId": CO, "ProjectContractID": "PC-1", "CurrencyCode": "EUR",
                                               "SalesTaxGroup": "WA"}])
    client.get("/data/Currencies")  # the first request attaches the server's loop (events go through it)
    yield client, emu, events
    client.close()
    server.stop()


def actual(actual_id: str, trans_type: str = "Cost", classification: str = "Expense", **extra: Any) -> dict[str, Any]:
    return {"dataAreaId": CO, "ActualId": actual_id, "ProjectId": "P-1", "TransactionCategory": "Travel",
            "TransactionClassification": classification, "TransType": trans_type, "AccountingDate": "2025-02-07",
            "Quantity": 2, "Amount": 100.0, "TransactionCurrencyId": "EUR", "ContractId": "PC-1", **extra}


def run(client: httpx.Client, flow: str) -> list[dict[str, Any]]:
    r = client.post("/_emulator/flows/run", json={"flow": flow})
    assert r.status_code == 200, r.text
    return r.json()["value"]


def staging(client: httpx.Client, actual_id: str) -> dict[str, Any]:
    r = client.get(f"/data/ProjCDSActualsImports(dataAreaId='{CO}',ActualId='{actual_id}')")
    assert r.status_code == 200, r.text
    return r.json()


def wait_events(emu: Any) -> None:
    assert emu.wait_for_events(5)
    time.sleep(0.05)


def test_import_and_post_write_back_accounting_amounts_voucher_and_tax(fo):
    client, emu, events = fo
    for a in (actual("A-1"), actual("A-2", "UnbilledSales")):
        assert client.post("/data/ProjCDSActualsImports", json=a).status_code == 201
    [imported] = run(client, "import-actuals")
    assert (imported["processed"], imported["failed"]) == (2, [])
    lines = {r["ActualId"]: r for r in emu.rows("ProjOpsIntegrationJournalLines")}
    assert (lines["A-1"]["OffsetAccount"], lines["A-1"]["LineStatus"], lines["A-2"]["SalesTaxGroup"]) == (
        "ExpenseIntegration", "Draft", "WA")
    assert lines["A-1"]["JournalId"] == lines["A-2"]["JournalId"] == "PJ-000001"

    [posted] = run(client, "post-journals")
    assert posted["processed"] == 2
    cost, sales = staging(client, "A-1"), staging(client, "A-2")
    assert (cost["AmountMST"], cost["ExchangeRate"], cost["Voucher"], cost["SalesTaxAmount"], cost["IsJournalized"],
            cost["Status"]) == (110.0, 1.1, "PRJV-000001", 0.0, "Yes", "Posted")
    assert (sales["Voucher"], sales["SalesTaxAmount"], sales["UnitPriceMST"]) == ("PRJV-000002", 10.0, 55.0)
    entries = [(e["Voucher"], e["Account"], e["AmountMST"]) for e in emu.rows("ProjOpsIntegrationAccountEntries")]
    assert ("PRJV-000001", "ExpenseIntegration", -110.0) in entries and ("PRJV-000001", "ProjectCost", 110.0) in entries
    wait_events(emu)
    updated = {(e["EntitySetName"], e.get("ActualId")) for e in events if e["Operation"] == "Update"}
    assert {("ProjCDSActualsImports", "A-1"), ("ProjCDSActualsImports", "A-2")} <= updated
    # nothing left to do: a second run changes nothing and emits nothing
    before = len(events)
    assert [r["processed"] for r in run(client, "all")] == [0, 0, 0, 0, 0]
    wait_events(emu)
    assert len(events) == before


def test_missing_exchange_rate_is_named_at_the_write_and_on_the_row(fo):
    client, emu, _ = fo
    r = client.post("/data/ProjCDSActualsImports", json=actual("A-9", AccountingDate="2024-12-31"))
    assert r.status_code == 400
    assert "No exchange rate from EUR to USD on 2024-12-31" in r.text
    # a row already in staging whose rate is gone: the import names it on the row and retries later
    emu.load_rows("ProjCDSActualsImports", [actual("A-8", AccountingDate="2024-12-31")])
    [report] = run(client, "import-actuals")
    row = staging(client, "A-8")
    assert (row["Status"], row["StatusReason"]) == ("Error", "ImportFailed")
    assert "No exchange rate from EUR to USD on 2024-12-31" in row["ErrorMessage"]
    assert report["failed"][0]["message"] == row["ErrorMessage"]
    emu.load_rows("ExchangeRates", [{"RateTypeName": "Default", "FromCurrency": "EUR", "ToCurrency": "USD",
                                     "StartDate": "2024-12-01", "Rate": 1.05}])
    run(client, "import-actuals")
    assert (staging(client, "A-8")["Status"], staging(client, "A-8")["ErrorMessage"]) == ("Imported", None)


def test_missing_project_category_in_the_legal_entity(fo):
    client, emu, _ = fo
    emu.load_rows("ProjCDSActualsImports", [actual("A-7", TransactionCategory="Hotel")])
    run(client, "import-actuals")
    row = staging(client, "A-7")
    assert row["Status"] == "Error"
    assert "Project category 'Hotel' does not exist in legal entity USPM" in row["ErrorMessage"]


def test_expense_posting_fills_the_expense_integration_account(fo):
    client, emu, events = fo
    emu.load_rows("ProjExpenseCategoryExports", [{"dataAreaId": CO, "ExpenseCategoryId": "Hotel", "Name": "Hotel",
                                                  "ProjectCategoryId": "Travel"}])
    emu.load_rows("ProjExpenseExports", [{"dataAreaId": CO, "ExpenseNumber": "EXP-1", "ProjectId": "P-1",
                                          "ExpenseCategoryId": "Hotel", "TransactionDate": "2025-02-10",
                                          "Amount": 200.0, "CurrencyCode": "EUR", "ApprovalStatus": "Approved"}])
    [report] = run(client, "post-expenses")
    assert report["processed"] == 1
    row = client.get(f"/data/ProjExpenseExports(dataAreaId='{CO}',ExpenseNumber='EXP-1')").json()
    assert (row["ApprovalStatus"], row["Voucher"]) == ("Posted", "EXPV-000001")
    assert ("ExpenseIntegration", 220.0) in [(e["Account"], e["AmountMST"])
                                             for e in emu.rows("ProjOpsIntegrationAccountEntries")]
    wait_events(emu)
    assert any(e["EntitySetName"] == "ProjExpenseExports" and e["ExpenseNumber"] == "EXP-1" for e in events)


def test_vendor_invoice_with_an_unknown_unit_is_not_posted_until_the_unit_exists(fo):
    client, emu, _ = fo
    emu.load_rows("VendorsV2", [{"dataAreaId": CO, "VendorAccountNumber": "V-1", "VendorOrganizationName": "NW",
                                 "VendorGroupId": "SUB", "CurrencyCode": "EUR"}])
    emu.load_rows("ProjVendInvoiceHeaderExports", [{"dataAreaId": CO, "VendorInvoiceId": "VI-1",
                                                    "VendorAccountNumber": "V-1", "InvoiceDate": "2025-02-20",
                                                    "CurrencyCode": "EUR", "InvoiceAmount": 300.0}])
    emu.load_rows("ProjVendInvoiceLineExports", [{"dataAreaId": CO, "ExternalInvoiceLine": "VI-1-1",
                                                  "VendorInvoiceId": "VI-1", "LineNumber": 1, "ProjectId": "P-1",
                                                  "TransactionCategory": "Travel", "Quantity": 3, "LineAmount": 300.0,
                                                  "CurrencyCode": "EUR", "UnitOfMeasure": "TST"}])
    run(client, "post-vendor-invoices")
    head = client.get(f"/data/ProjVendInvoiceHeaderExports(dataAreaId='{CO}',VendorInvoiceId='VI-1')").json()
    assert head["PostingStatus"] == "Error"
    assert "Unit of measure 'TST' on vendor invoice line 'VI-1-1' does not exist" in head["ErrorMessage"]
    emu.load_rows("UnitsOfMeasure", [{"UnitSymbol": "TST"}])
    run(client, "post-vendor-invoices")
    head = client.get(f"/data/ProjVendInvoiceHeaderExports(dataAreaId='{CO}',VendorInvoiceId='VI-1')").json()
    assert (head["PostingStatus"], head["Voucher"], head["ErrorMessage"], head["HasProjectLine"]) == (
        "Posted", "APV-000001", None, "Yes")
    assert ("ProcurementIntegration", 330.0) in [(e["Account"], e["AmountMST"])
                                                 for e in emu.rows("ProjOpsIntegrationAccountEntries")]


def test_vendor_invoice_with_an_unknown_vendor_names_it(fo):
    client, emu, _ = fo
    emu.load_rows("ProjVendInvoiceHeaderExports", [{"dataAreaId": CO, "VendorInvoiceId": "VI-2",
                                                    "VendorAccountNumber": "V-404", "InvoiceDate": "2025-02-20",
                                                    "CurrencyCode": "EUR"}])
    run(client, "post-vendor-invoices")
    head = client.get(f"/data/ProjVendInvoiceHeaderExports(dataAreaId='{CO}',VendorInvoiceId='VI-2')").json()
    assert "Vendor account 'V-404' does not exist in legal entity USPM" in head["ErrorMessage"]


def test_billed_sales_become_proposal_lines_and_posting_the_invoice_writes_back(fo):
    client, emu, _ = fo
    emu.load_rows("ProjCDSInvoiceProposals", [{"dataAreaId": CO, "ProposalId": "INV-1", "ProjectContractID": "PC-1",
                                               "InvoiceDate": "2025-02-28", "CurrencyCode": "EUR"}])
    assert client.post("/data/ProjCDSActualsImports", json=actual("B-1", "BilledSales", "Time")).status_code == 201
    run(client, "import-actuals")
    [line] = list(emu.rows("ProjOpsInvoiceProposalLines"))
    assert (line["ProposalId"], line["Amount"]) == ("INV-1", 100.0)
    [report] = run(client, "post-invoices")
    assert report["processed"] == 1
    [invoice] = list(emu.rows("ProjInvoiceProposalExports"))
    assert (invoice["InvoiceId"], invoice["ProposalId"], invoice["InvoiceAmount"], invoice["SalesTaxAmount"],
            invoice["InvoiceStatus"]) == ("PINV-000001", "INV-1", 110.0, 10.0, "Posted")
    row = staging(client, "B-1")
    assert (row["InvoiceId"], row["Voucher"], row["AmountMST"], row["SalesTaxAmount"], row["IsJournalized"]) == (
        "PINV-000001", "PINV-000001", 110.0, 10.0, "Yes")


def test_unknown_flow_is_a_clear_400(fo):
    client, _, _ = fo
    r = client.post("/_emulator/flows/run", json={"flow": "nope"})
    assert r.status_code == 400 and "unknown flow 'nope'" in r.text


def test_flows_run_on_a_schedule():
    server = finance.start(port=0, token=TOKEN, flows_every=0.05)
    try:
        emu = server.app.state.emulator
        emu.load_rows("SalesTaxGroups", [{"dataAreaId": CO, "TaxGroup": "X", "Percentage": 1.0}])
        emu.load_rows("ProjExpenseExports", [{"dataAreaId": CO, "ExpenseNumber": "E-1", "ProjectId": "P-1",
                                              "ExpenseCategoryId": "Hotel", "TransactionDate": "2025-02-10",
                                              "Amount": 5.0, "CurrencyCode": "USD", "ApprovalStatus": "Approved"}])
        httpx.get(server.url + "/data/Currencies", headers=AUTH)  # starts the schedule on the server's loop
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            [row] = list(emu.rows("ProjExpenseExports"))
            if row.get("ErrorMessage"):
                break
            time.sleep(0.02)
        # no legal entity set up: the scheduled run stored why it could not post
        assert "Legal entity USPM has no accounting currency" in row["ErrorMessage"]
    finally:
        server.stop()


def test_a_synced_transaction_category_becomes_one_shared_category_per_transaction_type(fo):
    client, _, events = fo
    r = client.post("/data/ProjCDSCategories", json={"CategoryId": "Overtime", "Name": "Overtime",
                                                     "IntegrationId": "guid-1"})
    assert r.status_code == 201, r.text
    rows = client.get("/data/ProjSharedCategories", params={"$filter": "CategoryId eq 'Overtime'"}).json()["value"]
    assert sorted((x["TransactionType"], x["IntegrationId"]) for x in rows) == [
        ("Expense", "guid-1"), ("Fee", "guid-1"), ("Hour", "guid-1"), ("Item", "guid-1")]
    client.patch("/data/ProjCDSCategories(CategoryId='Overtime')", json={"Name": "Overtime work"})
    rows = client.get("/data/ProjSharedCategories", params={"$filter": "CategoryId eq 'Overtime'"}).json()["value"]
    assert len(rows) == 4 and {x["CategoryName"] for x in rows} == {"Overtime work"}


def test_a_synced_resource_role_is_copied_to_every_legal_entity_and_to_a_new_one(fo):
    client, emu, _ = fo
    emu.load_rows("LegalEntities", [{"LegalEntityId": "GBPM", "Name": "Contoso UK", "AccountingCurrency": "USD"}])
    r = client.post("/data/ProjCDSResourceRoles", json={"ResourceRoleId": "Architect", "Name": "Architect",
                                                        "IntegrationId": "role-1"})
    assert r.status_code == 201, r.text
    rows = client.get("/data/ProjResourceRoles").json()["value"]
    assert sorted((x["dataAreaId"], x["ResourceRoleId"]) for x in rows) == [("gbpm", "Architect"), ("uspm", "Architect")]
    r = client.post("/data/LegalEntities", json={"LegalEntityId": "DEPM", "Name": "Contoso DE",
                                                 "AccountingCurrency": "EUR"})
    assert r.status_code == 201, r.text
    rows = client.get("/data/ProjResourceRoles", params={"$filter": "dataAreaId eq 'depm'"}).json()["value"]
    assert [(x["ResourceRoleId"], x["IntegrationId"]) for x in rows] == [("Architect", "role-1")]


def test_estimates_become_forecasts_that_follow_changes_and_deletes(fo):
    client, emu, events = fo
    emu.load_rows("ProjCDSTasks", [{"dataAreaId": CO, "ProjectId": "P-1", "Task": "T-1", "Name": "Build"}])
    r = client.post("/data/ProjCDSEstimateHours", json={
        "dataAreaId": CO, "EstimateId": "E-1", "ProjectId": "P-1", "TaskId": "T-1", "Duration": 10,
        "PlannedCostAmount": 800.0, "PlannedSalesAmount": 1200.0, "SalesCurrency": "USD", "StartDate": "2025-02-03"})
    assert r.status_code == 201, r.text
    r = client.post("/data/ProjCDSEstimateExpensesImports", json={
        "dataAreaId": CO, "EstimateLineId": "L-1", "ProjectId": "P-1", "TransactionCategory": "Travel",
        "TransType": "Cost", "Quantity": 2, "Price": 150.0, "CurrencyId": "USD", "DocumentDate": "2025-02-03"})
    assert r.status_code == 201, r.text
    hour = client.get(f"/data/ProjHourForecasts(dataAreaId='{CO}',ForecastId='E-1')").json()
    assert (hour["ProjectId"], hour["TaskId"], hour["Hours"], hour["CostPrice"], hour["SalesPrice"]) == (
        "P-1", "T-1", 10.0, 80.0, 120.0)
    cost = client.get(f"/data/ProjExpenseForecasts(dataAreaId='{CO}',ForecastId='L-1')").json()
    assert (cost["CategoryId"], cost["Quantity"], cost["CostPrice"], cost["Amount"]) == ("Travel", 2.0, 150.0, 300.0)
    client.patch(f"/data/ProjCDSEstimateHours(dataAreaId='{CO}',EstimateId='E-1')", json={"Duration": 20})
    assert client.get(f"/data/ProjHourForecasts(dataAreaId='{CO}',ForecastId='E-1')").json()["Hours"] == 20.0
    r = client.delete(f"/data/ProjCDSEstimateExpensesImports(dataAreaId='{CO}',EstimateLineId='L-1')")
    assert r.status_code == 204
    assert client.get(f"/data/ProjExpenseForecasts(dataAreaId='{CO}',ForecastId='L-1')").status_code == 404
    wait_events(emu)
    sets = {e.get("BusinessEventId", "") for e in events}
    assert any("ProjHourForecast" in s for s in sets), sets
