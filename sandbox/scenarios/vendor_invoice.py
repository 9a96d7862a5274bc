"""Vendor invoice lifecycle (po-maps.md §6): a pending vendor invoice with a project line posted in
Finance (procurement integration account) -> Dataverse invoice and line -> approved -> Material actuals
-> staged, imported, posted (the integration account cleared) -> accounting result on the actuals.

Failure modes: a unit of measure, or a vendor account, that Dataverse does not have. The line's
``msdyn_unit`` (uom by name) and the invoice's ``msdyn_vendor`` (account by number and company) are
reference lookups: nothing in dualsync brings those rows, so the change goes to the error store at once
(validation), naming the value and the table; once the row exists in Dataverse, the replay writes it.
Finance also refuses to post an invoice whose line has an unknown unit (``PostingStatus = Error``,
``ErrorMessage`` naming the unit and the line) until the unit exists there.
"""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.dataverse.flows import CLASS_MATERIAL, TYPE_COST, TYPE_UNBILLED, VENDOR_INVOICE_APPROVED
from sandbox.demo.options import CUSTOMER_TYPE_VENDOR
from sandbox.scenarios.actuals import Expected, check_staged, post_and_check_write_back
from sandbox.scenarios.lookup import Project, finance_rate, project_with_contract_line, tasks
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks

HEADERS, LINES = "ProjVendInvoiceHeaderExports", "ProjVendInvoiceLineExports"


async def _invoice(p: Pipeline, pr: Project, vendor: str, unit: str | None) -> tuple[dict[str, Any], str, float]:
    leaves, _ = await tasks(p, pr.id)
    invoice_id = f"SCN-VI{uuid.uuid4().hex[:6].upper()}"
    key = {"dataAreaId": pr.area, "VendorInvoiceId": invoice_id}
    amount = 2 * 150.0
    await p.finance.create(HEADERS, {**key, "InvoiceNumber": invoice_id[4:], "VendorAccountNumber": vendor,
                                     "InvoiceDate": f"{pr.start}T00:00:00Z", "CurrencyCode": pr.accounting_currency,
                                     "InvoiceAmount": amount, "Description": "Scenario vendor invoice",
                                     "HoldPayment": "No", "HasProjectLine": "Yes"})
    await p.wait()  # the header before its lines, as Finance sends them
    line = f"{invoice_id}-1"
    await p.finance.create(LINES, {
        "dataAreaId": pr.area, "ExternalInvoiceLine": line, "VendorInvoiceId": invoice_id, "LineNumber": 1,
        "ProjectId": pr.number, "ProjectDataAreaId": pr.area, "TaskId": leaves[0]["msdyn_projecttaskid"],
        "TransactionCategory": "Hardware", "Description": "Scenario hardware", "Quantity": 2, "UnitPrice": 150.0,
        "LineAmount": amount, "CurrencyCode": pr.accounting_currency, "UnitOfMeasure": unit})
    await p.wait()
    return key, line, amount


async def run(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 2)
    vendor = (await p.finance.query("VendorsV2", "dataAreaId eq {}", pr.area))[0]["VendorAccountNumber"]
    key, line_id, amount = await _invoice(p, pr, vendor, None)
    await p.finance.run_flow("post-vendor-invoices")
    head = await p.finance.find(HEADERS, key) or {}
    c.equal("Finance: invoice posted with an AP voucher", (head.get("PostingStatus"), str(head.get("Voucher"))[:4]),
            ("Posted", "APV-"))
    rate = await finance_rate(p, pr.accounting_currency, pr.accounting_currency, pr.start) or 0.0
    await p.wait()

    invoices = await p.dataverse.query("msdyn_projectvendorinvoices", f"msdyn_externalinvoice eq '{key['VendorInvoiceId']}'")
    lines = await p.dataverse.query("msdyn_projectvendorinvoicelines", f"msdyn_externalinvoiceline eq '{line_id}'")
    if not c.check("Dataverse: the invoice and its project line arrived", len(invoices) == 1 and len(lines) == 1):
        return
    c.equal("Dataverse line: amount, quantity, project", (float(lines[0]["msdyn_amount"]),
            float(lines[0]["msdyn_quantity"]), lines[0]["_msdyn_project_value"]), (amount, 2.0, pr.id))

    await p.dataverse.run_flow("approve-vendor-invoices")
    await p.wait()
    approved = await p.dataverse.get("msdyn_projectvendorinvoices", invoices[0]["msdyn_projectvendorinvoiceid"])
    c.equal("Dataverse: invoice approved", approved.get("msdyn_invoicestatus"), VENDOR_INVOICE_APPROVED)
    actuals = await p.dataverse.query("msdyn_actuals",
                                      f"_msdyn_vendorinvoiceline_value eq {lines[0]['msdyn_projectvendorinvoicelineid']}")
    by_type = {a["msdyn_transactiontypecode"]: a for a in actuals}
    if not c.check("Dataverse: Material cost and unbilled-sales actuals created",
                   set(by_type) == {TYPE_COST, TYPE_UNBILLED}
                   and all(a["msdyn_transactionclassification"] == CLASS_MATERIAL for a in actuals),
                   str(sorted(by_type))):
        return
    cost = by_type[TYPE_COST]["msdyn_actualid"]
    expected = [Expected(cost, "material cost", amount, pr.accounting_currency),
                Expected(by_type[TYPE_UNBILLED]["msdyn_actualid"], "material unbilled sales",
                         float(by_type[TYPE_UNBILLED]["msdyn_amount"]), pr.accounting_currency)]
    if not await check_staged(p, c, pr, expected, {"material cost": "Cost", "material unbilled sales": "UnbilledSales"}):
        return
    await post_and_check_write_back(p, c, pr, expected, pr.start)
    entries = await p.finance.query(
        "ProjOpsIntegrationAccountEntries",
        "Account eq 'ProcurementIntegration' and (SourceDocument eq {} or SourceDocument eq {})",
        key["VendorInvoiceId"], cost)
    c.equal("Finance: the procurement integration account is debited at posting and cleared by the journal",
            (len(entries), round(sum(float(e["AmountMST"]) for e in entries), 2), max(
                (float(e["AmountMST"]) for e in entries), default=0.0)), (2, 0.0, round(amount * rate, 2)))


async def _kept(p: Pipeline, c: Checks, what: str, map_name: str, key: str, reason: str) -> dict[str, Any] | None:
    """The change is in the error store at once, classified validation (no retry), naming the cause."""
    errors = await p.open_errors(map_name, key)
    error = errors[0] if errors else None
    c.check(f"{what}: the change is kept in the error store ({map_name})", bool(errors),
            f"{len(errors)} open error(s) for {key}")
    c.equal(f"{what}: classified validation (not retried)", error and error.get("classification"), "validation")
    c.contains(f"{what}: the error names the value and the table", error and error.get("reason"), reason)
    return error


async def _replay(p: Pipeline, c: Checks, what: str, error: dict[str, Any] | None, map_name: str) -> None:
    if error is None:
        return
    before = {e["id"] for e in await p.operations.errors(map_name, status="open", limit=500)}
    answer = await p.operations.replay(error["id"])
    c.equal(f"{what}: replayed", answer.get("status"), "replayed")
    await p.wait()
    again = [e for e in await p.operations.errors(map_name, status="open", limit=500) if e["id"] not in before]
    c.check(f"{what}: the replay succeeded (no open error left)", not again,
            " | ".join(f"{e.get('reason')} {e.get('description')}" for e in again)[:1500])


async def unknown_unit_or_vendor(p: Pipeline, c: Checks) -> None:
    """A line whose unit of measure is not in Dataverse, and an invoice whose vendor has no account in
    Dataverse: each lands in the error store at once, named; after the fix, the replay writes it."""
    pr = await project_with_contract_line(p, 1)
    vendor = (await p.finance.query("VendorsV2", "dataAreaId eq {}", pr.area))[0]["VendorAccountNumber"]
    unit = f"U{uuid.uuid4().hex[:3].upper()}"
    key, line_id, _ = await _invoice(p, pr, vendor, unit)
    c.check("unit: the line is not in Dataverse", not await p.dataverse.query(
        "msdyn_projectvendorinvoicelines", f"msdyn_externalinvoiceline eq '{line_id}'"))
    error = await _kept(p, c, "unit", "vendor_invoice_lines", line_id,
                        f"unit of measure '{unit}' not found in Dataverse uoms (name)")
    # Finance refuses to post the invoice too, and says which unit on which line
    await p.finance.run_flow("post-vendor-invoices")
    head = await p.finance.find(HEADERS, key) or {}
    c.equal("Finance: not posted", head.get("PostingStatus"), "Error")
    c.contains("the invoice names the unknown unit and the line", head.get("ErrorMessage"),
               f"Unit of measure '{unit}' on vendor invoice line '{line_id}' does not exist")
    # the fix: the unit is created in both systems (Units is a Supply Chain map, not dualsync's)
    await p.finance.create("UnitsOfMeasure", {"UnitSymbol": unit})
    unit_id = await p.dataverse.create("uoms", {"name": unit, "quantity": 1})
    await p.wait()
    await _replay(p, c, "unit", error, "vendor_invoice_lines")
    lines = await p.dataverse.query("msdyn_projectvendorinvoicelines", f"msdyn_externalinvoiceline eq '{line_id}'")
    c.equal("unit: after the replay the line is in Dataverse with its unit",
            [ln.get("_msdyn_unit_value") for ln in lines], [unit_id])
    await p.finance.run_flow("post-vendor-invoices")
    head = await p.finance.find(HEADERS, key) or {}
    c.equal("after the fix the invoice posts", (head.get("PostingStatus"), head.get("ErrorMessage")), ("Posted", None))

    # a vendor that exists in Finance (and syncs as msdyn_vendor) but has no account in Dataverse
    number = f"SCN-V{uuid.uuid4().hex[:5].upper()}"
    await p.finance.create("VendorsV2", {"dataAreaId": pr.area, "VendorAccountNumber": number,
                                         "VendorOrganizationName": "Scenario vendor", "VendorGroupId": "Services",
                                         "CurrencyCode": pr.accounting_currency})
    await p.wait()
    invoice_id = f"SCN-VI{uuid.uuid4().hex[:6].upper()}"
    await p.finance.create(HEADERS, {"dataAreaId": pr.area, "VendorInvoiceId": invoice_id, "InvoiceNumber": "V" + number,
                                     "VendorAccountNumber": number, "InvoiceDate": f"{pr.start}T00:00:00Z",
                                     "CurrencyCode": pr.accounting_currency, "InvoiceAmount": 10.0,
                                     "Description": "Scenario: vendor without an account", "HoldPayment": "No",
                                     "HasProjectLine": "Yes"})
    await p.wait()
    c.check("vendor: the invoice is not in Dataverse", not await p.dataverse.query(
        "msdyn_projectvendorinvoices", f"msdyn_externalinvoice eq '{invoice_id}'"))
    error = await _kept(p, c, "vendor", "vendor_invoices", invoice_id,
                        f"vendor account '{number}' in company {pr.company} not found in Dataverse accounts "
                        "(accountnumber, msdyn_company)")
    # the fix: the vendor-to-account workflow (here by hand) creates the account in the invoice's company
    account = await p.dataverse.create("accounts", {
        "name": "Scenario vendor", "accountnumber": number, "customertypecode": CUSTOMER_TYPE_VENDOR,
        "msdyn_company@odata.bind": f"/cdm_companies({pr.company_id})"})
    await p.wait()
    await _replay(p, c, "vendor", error, "vendor_invoices")
    invoices = await p.dataverse.query("msdyn_projectvendorinvoices", f"msdyn_externalinvoice eq '{invoice_id}'")
    c.equal("vendor: after the replay the invoice is in Dataverse with its vendor account",
            [(i.get("_msdyn_vendor_value"), i.get("_msdyn_owningcompany_value")) for i in invoices],
            [(account, pr.company_id)])
