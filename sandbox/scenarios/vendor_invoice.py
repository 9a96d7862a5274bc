"""Vendor invoice lifecycle (po-maps.md §6): a pending vendor invoice with a project line posted in
Finance (procurement integration account) -> Dataverse invoice and line -> approved -> Material actuals
-> staged, imported, posted (the integration account cleared) -> accounting result on the actuals.

Failure mode: an unknown unit of measure on the line. Finance refuses to post and says which unit on
which line, on the invoice (``PostingStatus = Error``, ``ErrorMessage``); once the unit exists, posting
works. This shows in Finance, not in dualsync's error store: no map carries the unit yet (the line's
msdyn_unit lookup needs a lookup to reference data, see docs/scenarios.md). An unknown vendor cannot be
entered: Finance refuses the invoice.
"""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.dataverse.flows import CLASS_MATERIAL, TYPE_COST, TYPE_UNBILLED, VENDOR_INVOICE_APPROVED
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


async def unknown_unit(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 1)
    vendor = (await p.finance.query("VendorsV2", "dataAreaId eq {}", pr.area))[0]["VendorAccountNumber"]
    unit = f"U{uuid.uuid4().hex[:3].upper()}"
    key, line_id, _ = await _invoice(p, pr, vendor, unit)
    await p.finance.run_flow("post-vendor-invoices")
    head = await p.finance.find(HEADERS, key) or {}
    c.equal("Finance: not posted", head.get("PostingStatus"), "Error")
    c.contains("the invoice names the unknown unit and the line", head.get("ErrorMessage"),
               f"Unit of measure '{unit}' on vendor invoice line '{line_id}' does not exist")
    await p.finance.create("UnitsOfMeasure", {"UnitSymbol": unit})
    await p.finance.run_flow("post-vendor-invoices")
    head = await p.finance.find(HEADERS, key) or {}
    c.equal("after the fix the invoice posts", (head.get("PostingStatus"), head.get("ErrorMessage")), ("Posted", None))
