"""Every catalog map, end to end: the real catalog, the real engine, both emulators over real HTTP.

Maps run in dependency order; each child row points at parents that were themselves synced through
the handler. Every map is applied once, then handled again and skipped as unchanged. The first test
keeps the catalog and the emulators' `$metadata` in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.catalog.validate import validate_directory
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.mapping import compile_catalog
from shared.settings import load_settings
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.outcome import Applied, Skipped
from shared.sync.sides import DataverseSide, FinanceSide

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAPS = Path(__file__).resolve().parents[2] / "maps"
CATALOG = load_catalog(MAPS)
COMPILED = compile_catalog(CATALOG)
CO, co = "USPM", "uspm"


def _metadata(dv_url: str, fo_url: str, folder: Path) -> Path:
    folder.mkdir()
    (folder / "dataverse.xml").write_bytes(httpx.get(dv_url + "/api/data/v9.2/$metadata", headers=AUTH).content)
    (folder / "finance.xml").write_bytes(httpx.get(fo_url + "/data/$metadata", headers=AUTH).content)
    return folder


def test_catalog_matches_the_emulators_metadata(tmp_path):
    from sandbox import dataverse, finance

    dv, fo = dataverse.start(port=0, token=TOKEN), finance.start(port=0, token=TOKEN)
    try:
        problems = validate_directory(MAPS, _metadata(dv.url, fo.url, tmp_path / "meta"))
    finally:
        for server in (dv, fo):
            server.stop()
    assert problems == [], "\n".join(map(str, problems))


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers():
    from sandbox import dataverse, finance

    dv = dataverse.start(port=0, token=TOKEN)
    fo = finance.start(port=0, token=TOKEN)
    yield dv, fo
    dv.stop()
    fo.stop()


class World:
    """The handler plus small helpers to create source rows and read target rows on each side."""

    def __init__(self, handler: SyncHandler, dv: Any, fo: Any):
        self.handler, self.dv, self.fo = handler, dv, fo
        self.http = httpx.Client(base_url=dv.url + "/api/data/v9.2/", headers=AUTH)
        self.fo_http = httpx.Client(base_url=fo.url + "/data/", headers=AUTH)
        self.applied: list[str] = []

    # Dataverse
    def create(self, entity_set: str, body: dict[str, Any]) -> str:
        r = self.http.post(entity_set, json=body)
        assert r.status_code == 204, r.text
        return r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    def company_id(self) -> str:
        return self.http.get(f"cdm_companies(cdm_companycode='{CO}')").json()["cdm_companyid"]

    def company(self, nav: str = "msdyn_company") -> dict[str, str]:
        return {f"{nav}@odata.bind": f"/cdm_companies(cdm_companycode='{CO}')"}

    def usd(self) -> dict[str, str]:
        return {"transactioncurrencyid@odata.bind": "/transactioncurrencies(isocurrencycode='USD')"}

    def by_key(self, entity_set: str, column: str, value: str) -> str:
        return f"/{entity_set}({column}='{value}',_msdyn_company_value={self.company_id()})"

    def dv_row(self, entity_set: str, flt: str, expand: str | None = None) -> dict[str, Any]:
        params = {"$filter": flt, **({"$expand": expand} if expand else {})}
        rows = self.http.get(entity_set, params=params).json()["value"]
        assert len(rows) == 1, rows
        return rows[0]

    # Finance
    def load(self, entity_set: str, rows: list[dict[str, Any]]) -> None:
        self.fo.app.state.emulator.load_rows(entity_set, rows, validate=True)

    def fo_row(self, entity_set: str, **match: Any) -> dict[str, Any]:
        rows = [r for r in self.fo.app.state.emulator.rows(entity_set)
                if all(r.get(k) == v for k, v in match.items())]
        assert len(rows) == 1, (entity_set, match, rows)
        return rows[0]

    async def sync(self, map_name: str, source: Side, *, record_id: str | None = None,
                   key: list[Any] | None = None) -> str:
        import json

        address = {"record_id": record_id} if record_id else {"key": json.dumps(key)}
        outcome = await self.handler.handle(map_name, source, **address)
        assert isinstance(outcome, Applied) and outcome == Applied("upsert", outcome.key), (map_name, source, outcome)
        again = await self.handler.handle(map_name, source, **address)
        assert again == Skipped("unchanged", outcome.key), (map_name, source, again)
        self.applied.append(f"{map_name}:{source.value}")
        return outcome.key or ""


@pytest.fixture
async def world(servers, tmp_path):
    dv, fo = servers
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=5.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    sides = {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), COMPILED),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), COMPILED),
    }
    w = World(SyncHandler(COMPILED, sides, state), dv, fo)
    yield w
    w.http.close()
    w.fo_http.close()
    await state.close()
    await registry.aclose()


async def prerequisites(w: World) -> None:
    w.load("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar", "Symbol": "$"},
                          {"CurrencyCode": "EUR", "Name": "Euro", "Symbol": "E"}])
    await w.sync("currencies", Side.FINANCE, key=["USD"])
    await w.sync("currencies", Side.FINANCE, key=["EUR"])
    assert w.dv_row("transactioncurrencies", "isocurrencycode eq 'EUR'")["currencyname"] == "Euro"

    w.load("LegalEntities", [{"LegalEntityId": CO, "Name": "Contoso US", "AccountingCurrency": "USD"}])
    await w.sync("legal_entities", Side.FINANCE, key=[CO])
    assert w.dv_row("cdm_companies", f"cdm_companycode eq '{CO}'")["cdm_name"] == "Contoso US"

    w.load("Ledgers", [{"LegalEntityId": CO, "Name": CO, "Description": "US ledger", "ChartOfAccounts": "Shared",
                        "FiscalCalendar": "Fiscal", "AccountingCurrency": "USD"}])
    await w.sync("ledgers", Side.FINANCE, key=[CO, CO])
    ledger = w.dv_row("msdyn_ledgers", f"msdyn_name eq '{CO}'",
                      "msdyn_accountingcurrency($select=isocurrencycode),msdyn_company($select=cdm_companycode)")
    assert (ledger["msdyn_chartofaccounts"], ledger["msdyn_accountingcurrency"]["isocurrencycode"],
            ledger["msdyn_company"]["cdm_companycode"]) == ("Shared", "USD", CO)

    w.load("Workers", [{"PersonnelNumber": "W-1", "Name": "Ada Lovelace", "FirstName": "Ada",
                        "LastName": "Lovelace", "WorkerType": "Contractor"}])
    await w.sync("workers", Side.FINANCE, key=["W-1"])
    worker = w.dv_row("cdm_workers", "cdm_workernumber eq 'W-1'")
    assert (worker["cdm_fullname"], worker["cdm_type"]) == ("Ada Lovelace", 754400001)

    # customers and vendors both ways
    w.load("CustomersV3", [{"dataAreaId": co, "CustomerAccount": "C-1", "OrganizationName": "Fabrikam",
                            "CustomerGroupId": "10", "SalesCurrencyCode": "USD", "PartyType": "Organization",
                            "CreditLimit": 5000.0, "AddressCity": "Seattle"}])
    await w.sync("customers", Side.FINANCE, key=[CO, "C-1"])
    account = w.dv_row("accounts", "accountnumber eq 'C-1'", "transactioncurrencyid($select=isocurrencycode)")
    assert (account["name"], account["customertypecode"], account["address1_city"], float(account["creditlimit"]),
            account["transactioncurrencyid"]["isocurrencycode"]) == ("Fabrikam", 3, "Seattle", 5000.0, "USD")
    c2 = w.create("accounts", {"accountnumber": "C-2", "name": "Litware", "customertypecode": 3,
                               "msdyn_customergroupid": "20", **w.company(), **w.usd()})
    await w.sync("customers", Side.DATAVERSE, record_id=c2)
    assert w.fo_row("CustomersV3", CustomerAccount="C-2")["OrganizationName"] == "Litware"
    assert w.fo_row("CustomersV3", CustomerAccount="C-2")["dataAreaId"] == co

    w.load("VendorsV2", [{"dataAreaId": co, "VendorAccountNumber": "V-1", "VendorOrganizationName": "Northwind",
                          "VendorGroupId": "SUB", "CurrencyCode": "USD", "OnHoldStatus": "Invoice"}])
    await w.sync("vendors", Side.FINANCE, key=[CO, "V-1"])
    assert w.dv_row("msdyn_vendors", "msdyn_vendoraccountnumber eq 'V-1'")["msdyn_onholdstatus"] == 192350001
    v2 = w.create("msdyn_vendors", {"msdyn_vendoraccountnumber": "V-2", "msdyn_vendorname": "Tailspin",
                                    "msdyn_vendorgroupid": "SUB", "msdyn_onholdstatus": 192350000,
                                    "msdyn_currencycode@odata.bind": "/transactioncurrencies(isocurrencycode='USD')",
                                    **w.company()})
    await w.sync("vendors", Side.DATAVERSE, record_id=v2)
    vendor = w.fo_row("VendorsV2", VendorAccountNumber="V-2")
    assert (vendor["VendorOrganizationName"], vendor["CurrencyCode"], vendor["OnHoldStatus"]) == ("Tailspin", "USD", "No")


async def setup(w: World) -> dict[str, str]:
    ids: dict[str, str] = {}
    role = w.create("bookableresourcecategories", {"name": "Consultant", "description": "Consultant role"})
    await w.sync("resource_roles", Side.DATAVERSE, record_id=role)
    assert w.fo_row("ProjCDSResourceRoles", ResourceRoleId="Consultant")["IntegrationId"] == role

    cat = w.create("msdyn_transactioncategories", {"msdyn_name": "Travel", "msdyn_description": "Travel costs"})
    await w.sync("transaction_categories", Side.DATAVERSE, record_id=cat)
    assert w.fo_row("ProjCDSCategories", CategoryId="Travel")["Name"] == "Travel costs"
    # Finance creates its project categories from the shared category (reference data, seeded here)
    w.load("ProjectCategories", [{"dataAreaId": co, "CategoryId": "Travel", "CategoryName": "Travel",
                                  "TransactionType": "Expense", "SharedCategoryId": "Travel"}])

    ids["resource"] = w.create("bookableresources", {
        "name": "Ada", "msdyn_worker@odata.bind": "/cdm_workers(cdm_workernumber='W-1')"})
    await w.sync("worker_resources", Side.DATAVERSE, record_id=ids["resource"])
    res = w.fo_row("ProjCDSWorkerResourceImports", ResourceId=ids["resource"])
    assert (res["ResourceName"], res["PersonnelNumber"]) == ("Ada", "W-1")

    contract = w.create("salesorders", {"ordernumber": "PC-1", "name": "Office move contract", **w.company(), **w.usd(),
                                        "customerid@odata.bind": w.by_key("accounts", "accountnumber", "C-1")})
    await w.sync("project_contracts", Side.DATAVERSE, record_id=contract)
    pc = w.fo_row("ProjCDSProjectContracts", ProjectContractID="PC-1")
    assert (pc["dataAreaId"], pc["Name"], pc["CustomerAccount"], pc["CurrencyCode"], pc["SourceDataID"]) == (
        co, "Office move contract", "C-1", "USD", contract)

    project = w.create("msdyn_projects", {
        "msdyn_projectnumber": "P-1", "msdyn_subject": "Office move", "msdyn_scheduledstart": "2025-02-03T09:30:00Z",
        "msdyn_customer@odata.bind": w.by_key("accounts", "accountnumber", "C-1"),
        **w.company()})
    await w.sync("projects", Side.DATAVERSE, record_id=project)
    p = w.fo_row("ProjCDSProjects", ProjectID="P-1")
    assert (p["dataAreaId"], p["ProjectName"], p["CustomerAccount"], p["ProjectType"], p["ProjectStatus"],
            p["ProjectedStartDate"]) == (co, "Office move", "C-1", "TimeMaterial", "InProcess", "2025-02-03T00:00:00Z")

    ids["task"] = w.create("msdyn_projecttasks", {
        "msdyn_subject": "Pack boxes", "msdyn_wbsid": "1.1", **w.company(),
        "msdyn_project@odata.bind": w.by_key("msdyn_projects", "msdyn_projectnumber", "P-1")})
    await w.sync("project_tasks", Side.DATAVERSE, record_id=ids["task"])
    t = w.fo_row("ProjCDSTasks", Task=ids["task"])
    assert (t["dataAreaId"], t["ProjectId"], t["Name"], t["WorkBreakdownStructureID"]) == (co, "P-1", "Pack boxes", "1.1")

    line = w.create("salesorderdetails", {
        "msdyn_lineid": "CL-1", "productdescription": "Move services", "msdyn_billingmethod": 192350001,
        "extendedamount": 1000, **w.company(), **w.usd(),
        "salesorderid@odata.bind": w.by_key("salesorders", "ordernumber", "PC-1"),
        "msdyn_project@odata.bind": w.by_key("msdyn_projects", "msdyn_projectnumber", "P-1")})
    await w.sync("project_contract_lines", Side.DATAVERSE, record_id=line)
    cl = w.fo_row("ProjCDSContractLineImports", ContractLine="CL-1")
    assert (cl["ContractId"], cl["ProjectId"], cl["Type"], cl["LineAmount"], cl["TransactionId"]) == (
        "PC-1", "P-1", "FixedPrice", 1000.0, line)

    milestone = w.create("msdyn_contractlinescheduleofvalues", {
        "msdyn_name": "Kick-off", "msdyn_milestonedate": "2025-03-31", "msdyn_amount": 500, **w.company(), **w.usd(),
        "msdyn_contractline@odata.bind": w.by_key("salesorderdetails", "msdyn_lineid", "CL-1")})
    await w.sync("contract_line_milestones", Side.DATAVERSE, record_id=milestone)
    m = w.fo_row("ProjCDSContractLineMilestoneImports", TransactionId=milestone)
    assert (m["ContractLineRef"], m["InvoiceDate"], m["Amount"], m["CurrencyId"], m["Description"]) == (
        "CL-1", "2025-03-31T00:00:00Z", 500.0, "USD", "Kick-off")

    funding = w.create("msdyn_projectcontractsplitbillingrules", {
        "msdyn_name": "FS-1", "msdyn_allocationpercentage": 100, "msdyn_fundingtype": 192350000, **w.company(),
        "msdyn_contract@odata.bind": w.by_key("salesorders", "ordernumber", "PC-1"),
        "msdyn_customer@odata.bind": w.by_key("accounts", "accountnumber", "C-1")})
    await w.sync("project_funding_sources", Side.DATAVERSE, record_id=funding)
    fs = w.fo_row("ProjCDSFundingSources", FundingSourceId="FS-1")
    assert (fs["ProjectContractID"], fs["CustomerAccount"], fs["FundingType"], fs["AllocationPercentage"]) == (
        "PC-1", "C-1", "Customer", 100.0)
    return ids


async def estimates_and_actuals(w: World, ids: dict[str, str]) -> None:
    project = w.by_key("msdyn_projects", "msdyn_projectnumber", "P-1")
    task = f"/msdyn_projecttasks({ids['task']})"
    assignment = w.create("msdyn_resourceassignments", {
        "msdyn_name": "Ada on packing", "msdyn_plannedwork": 8, "msdyn_start": "2025-02-04T08:00:00Z", **w.company(),
        **w.usd(), "msdyn_projectid@odata.bind": project, "msdyn_taskid@odata.bind": task,
        "msdyn_bookableresourceid@odata.bind": f"/bookableresources({ids['resource']})"})
    await w.sync("hour_estimates", Side.DATAVERSE, record_id=assignment)
    h = w.fo_row("ProjCDSEstimateHours", EstimateId=assignment)
    assert (h["ProjectId"], h["TaskId"], h["ResourceId"], h["Duration"], h["StartDate"], h["SalesCurrency"]) == (
        "P-1", ids["task"], ids["resource"], 8.0, "2025-02-04T00:00:00Z", "USD")

    for map_name, entity_set, cls in (("expense_estimates", "ProjCDSEstimateExpensesImports", 192350001),
                                      ("material_estimates", "ProjCDSEstimateMaterialImports", 192350002)):
        est = w.create("msdyn_estimatelines", {
            "msdyn_description": map_name, "msdyn_transactionclassification": cls, "msdyn_documentdate": "2025-02-05",
            "msdyn_quantity": 2, "msdyn_price": 12.5, "msdyn_transactiontypecode": 192350000,
            "msdyn_billingtype": 192350001, **w.company(), **w.usd(), "msdyn_project@odata.bind": project,
            "msdyn_task@odata.bind": task,
            "msdyn_transactioncategory@odata.bind": "/msdyn_transactioncategories(msdyn_name='Travel')"})
        await w.sync(map_name, Side.DATAVERSE, record_id=est)
        e = w.fo_row(entity_set, EstimateLineId=est)
        assert (e["ProjectId"], e["TransactionCategory"], e["TransType"], e["BillingType"], e["DocumentDate"],
                e["Price"], e["CurrencyId"]) == (
            "P-1", "Travel", "Cost", "Chargeable", "2025-02-05T00:00:00Z", 12.5, "USD")
        # the other estimate map's filter leaves this line alone
        other = "material_estimates" if map_name == "expense_estimates" else "expense_estimates"
        assert isinstance(await w.handler.handle(other, Side.DATAVERSE, record_id=est), Skipped)

    actual = w.create("msdyn_actuals", {
        "msdyn_description": "Packing, 4 h", "msdyn_transactionclassification": 192350000,
        "msdyn_transactiontypecode": 192350000, "msdyn_billingtype": 192350001, "msdyn_documentdate": "2025-02-06",
        "msdyn_accountingdate": "2025-02-07", "msdyn_quantity": 4, "msdyn_price": 50, "msdyn_amount": 200,
        "msdyn_skipsync": False, **w.company(), **w.usd(), "msdyn_project@odata.bind": project,
        "msdyn_task@odata.bind": task,
        "msdyn_contract@odata.bind": w.by_key("salesorders", "ordernumber", "PC-1"),
        "msdyn_contractline@odata.bind": w.by_key("salesorderdetails", "msdyn_lineid", "CL-1"),
        "msdyn_transactioncategory@odata.bind": "/msdyn_transactioncategories(msdyn_name='Travel')",
        "msdyn_bookableresource@odata.bind": f"/bookableresources({ids['resource']})"})
    key = await w.sync("actuals", Side.DATAVERSE, record_id=actual)
    a = w.fo_row("ProjCDSActualsImports", ActualId=actual)
    assert (a["dataAreaId"], a["ProjectId"], a["ContractLine"], a["ResourceId"], a["TransactionClassification"],
            a["TransType"], a["AccountingDate"], a["Amount"], a["TransactionCurrencyId"]) == (
        co, "P-1", "CL-1", ids["resource"], "Time", "Cost", "2025-02-07T00:00:00Z", 200.0, "USD")
    # Finance posts the journal and writes the accounting result back
    r = w.fo_http.patch(f"ProjCDSActualsImports(dataAreaId='{co}',ActualId='{actual}')?cross-company=true",
                        json={"AmountMST": 200.0, "ExchangeRate": 1.0, "Voucher": "PRJ-000123", "SalesTaxAmount": 0})
    assert r.status_code == 204, r.text
    import json

    await w.sync("actuals", Side.FINANCE, key=json.loads(key))
    back = w.dv_row("msdyn_actuals", f"msdyn_actualid eq {actual}")
    assert (back["msdyn_voucher"], float(back["msdyn_amountmst"]), back["msdyn_description"]) == (
        "PRJ-000123", 200.0, "Packing, 4 h")

    connection = w.create("msdyn_transactionconnections", {
        "msdyn_name": "cost to unbilled", "msdyn_transaction1": actual, "msdyn_transaction1role": 192350000,
        "msdyn_transaction1typecode": 192350000, "msdyn_transaction2": "unbilled-1",
        "msdyn_transaction2role": 192350001, "msdyn_transaction2typecode": 192350001})
    await w.sync("transaction_connections", Side.DATAVERSE, record_id=connection)
    tc = w.fo_row("ProjCDSTransactionRelationshipImports", ConnectionId=connection)
    assert (tc["Transaction1Id"], tc["Transaction1Role"], tc["Transaction2Role"], tc["Transaction1Type"]) == (
        actual, "Cost", "UnbilledSales", "192350000")


async def invoices_expenses_vendor_invoices(w: World, ids: dict[str, str]) -> None:
    proforma = w.create("invoices", {
        "invoicenumber": "INV-1", "name": "February invoice", "msdyn_invoicedate": "2025-02-28", "totalamount": 200,
        "msdyn_paymentterms": "Net30", **w.company(), **w.usd(),
        "customerid@odata.bind": w.by_key("accounts", "accountnumber", "C-1"),
        "salesorderid@odata.bind": w.by_key("salesorders", "ordernumber", "PC-1")})
    await w.sync("invoice_proposals", Side.DATAVERSE, record_id=proforma)
    ip = w.fo_row("ProjCDSInvoiceProposals", ProposalId="INV-1")
    assert (ip["ProjectContractID"], ip["CustomerAccount"], ip["InvoiceDate"], ip["Amount"], ip["PaymentTerms"]) == (
        "PC-1", "C-1", "2025-02-28T00:00:00Z", 200.0, "Net30")

    w.load("ProjInvoiceProposalExports", [{
        "dataAreaId": co, "InvoiceId": "CI-1", "ProposalId": "INV-1", "ProjectContractID": "PC-1",
        "InvoiceDate": "2025-03-01T00:00:00Z", "CurrencyCode": "USD", "InvoiceAmount": 216.0, "SalesTaxAmount": 16.0,
        "InvoiceStatus": "Posted"}])
    await w.sync("customer_invoices", Side.FINANCE, key=[CO, "CI-1"])
    ci = w.dv_row("msdyn_customerinvoices", "msdyn_invoicenumber eq 'CI-1'", "msdyn_invoiceproposal($select=invoicenumber)")
    assert (ci["msdyn_invoiceproposal"]["invoicenumber"], ci["msdyn_invoicedate"], float(ci["msdyn_taxamount"]),
            ci["msdyn_invoicestatus"]) == ("INV-1", "2025-03-01", 16.0, 192350002)

    w.load("ProjExpenseCategoryExports", [{"dataAreaId": co, "ExpenseCategoryId": "Hotel", "Name": "Hotel stays",
                                           "ProjectCategoryId": "Travel"}])
    await w.sync("expense_categories", Side.FINANCE, key=[CO, "Hotel"])
    ec = w.dv_row("msdyn_expensecategories", "msdyn_expensecategoryuniquename eq 'Hotel'",
                  "msdyn_transactioncategory($select=msdyn_name)")
    assert (ec["msdyn_name"], ec["msdyn_transactioncategory"]["msdyn_name"]) == ("Hotel stays", "Travel")

    w.load("ProjExpenseExports", [{
        "dataAreaId": co, "ExpenseNumber": "EXP-1", "ProjectId": "P-1", "ActivityNumber": ids["task"],
        "ExpenseCategoryId": "Hotel", "PersonnelNumber": "W-1", "TransactionDate": "2025-02-10T00:00:00Z",
        "Quantity": 1, "Amount": 180.0, "CurrencyCode": "USD", "Description": "Hotel Seattle",
        "ApprovalStatus": "Approved"}])
    await w.sync("expenses", Side.FINANCE, key=[CO, "EXP-1"])
    ex = w.dv_row("msdyn_expenses", "msdyn_externalexpenseid eq 'EXP-1'",
                  "msdyn_project($select=msdyn_projectnumber),msdyn_worker($select=cdm_workernumber)")
    assert (ex["msdyn_project"]["msdyn_projectnumber"], ex["msdyn_worker"]["cdm_workernumber"], float(ex["msdyn_amount"]),
            ex["msdyn_transactiondate"], ex["msdyn_expensestatus"], ex["_msdyn_projecttask_value"]) == (
        "P-1", "W-1", 180.0, "2025-02-10", 192350002, ids["task"])

    w.load("ProjVendInvoiceHeaderExports", [{
        "dataAreaId": co, "VendorInvoiceId": "VI-1", "InvoiceNumber": "NW-778", "VendorAccountNumber": "V-1",
        "InvoiceDate": "2025-02-20T00:00:00Z", "CurrencyCode": "USD", "InvoiceAmount": 300.0, "HoldPayment": "Yes",
        "HasProjectLine": "Yes"}])
    # the vendor as an account in its company (Project Operations' vendor-to-account workflow, no map)
    account = w.create("accounts", {"name": "Northwind", "accountnumber": "V-1", "customertypecode": 11, **w.company()})
    await w.sync("vendor_invoices", Side.FINANCE, key=[CO, "VI-1"])
    vi = w.dv_row("msdyn_projectvendorinvoices", "msdyn_externalinvoice eq 'VI-1'",
                  "msdyn_owningcompany($select=cdm_companycode)")
    assert (vi["msdyn_vendorinvoicenumber"], vi["msdyn_holdvendorpayment"], float(vi["msdyn_totalamount"]),
            vi["msdyn_owningcompany"]["cdm_companycode"], vi["_msdyn_vendor_value"]) == ("NW-778", True, 300.0, CO,
                                                                                       account)

    w.load("ProjVendInvoiceLineExports", [{
        "dataAreaId": co, "ExternalInvoiceLine": "VI-1-1", "VendorInvoiceId": "VI-1", "LineNumber": 1,
        "ProjectId": "P-1", "TaskId": ids["task"], "TransactionCategory": "Travel", "Quantity": 3, "UnitPrice": 100.0,
        "LineAmount": 300.0, "CurrencyCode": "USD", "TransactionDate": "2025-02-20T00:00:00Z"}])
    await w.sync("vendor_invoice_lines", Side.FINANCE, key=[CO, "VI-1-1"])
    vl = w.dv_row("msdyn_projectvendorinvoicelines", "msdyn_externalinvoiceline eq 'VI-1-1'",
                  "msdyn_vendorinvoice($select=msdyn_externalinvoice),msdyn_project($select=msdyn_projectnumber)")
    assert (vl["msdyn_vendorinvoice"]["msdyn_externalinvoice"], vl["msdyn_project"]["msdyn_projectnumber"],
            float(vl["msdyn_amount"]), vl["msdyn_transactiondate"]) == ("VI-1", "P-1", 300.0, "2025-02-20")


async def test_every_map_end_to_end_in_dependency_order(world):
    await prerequisites(world)
    ids = await setup(world)
    await estimates_and_actuals(world, ids)
    await invoices_expenses_vendor_invoices(world, ids)
    synced = {entry.split(":")[0] for entry in world.applied}
    # currency_exchange_rates has its own test below (engine bug: date in a Finance key filter)
    assert synced == set(CATALOG.maps) - {"currency_exchange_rates"}, sorted(set(CATALOG.maps) - synced)
    both_ways = {m.name for m in CATALOG if len(m.sources) == 2}
    assert all({f"{n}:dataverse", f"{n}:finance"} <= set(world.applied) for n in both_ways)


async def test_exchange_rates_finance_to_dataverse(world):
    w = world
    w.load("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}, {"CurrencyCode": "EUR", "Name": "Euro"}])
    await w.sync("currencies", Side.FINANCE, key=["USD"])
    await w.sync("currencies", Side.FINANCE, key=["EUR"])
    w.load("ExchangeRates", [{"RateTypeName": "Default", "FromCurrency": "EUR", "ToCurrency": "USD",
                              "StartDate": "2025-01-01T00:00:00Z", "Rate": 1.0825}])
    await w.sync("currency_exchange_rates", Side.FINANCE, key=["EUR", "USD", "Default", "2025-01-01"])
    rate = w.dv_row("msdyn_currencyexchangerates", "msdyn_ratetype eq 'Default'",
                    "msdyn_fromcurrency($select=isocurrencycode)")
    assert (rate["msdyn_fromcurrency"]["isocurrencycode"], rate["msdyn_validfrom"], float(rate["msdyn_exchangerate"])) == (
        "EUR", "2025-01-01", 1.0825)

