"""Proforma invoice lifecycle (po-maps.md §4): a proforma invoice confirmed in Dataverse -> invoice
proposal in Finance; confirmation creates billed-sales actuals (and Skip Sync reversals of unbilled
sales that stay in Dataverse) -> Import from staging puts them on the proposal -> the invoice is
posted in Finance (sales tax from the contract's tax group) -> the posted invoice and the accounting
result come back to Dataverse."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.dataverse.flows import CLASS_TIME, PROFORMA_CONFIRMED, TYPE_BILLED, TYPE_COST, TYPE_UNBILLED
from sandbox.scenarios.actuals import connect, new_actual, staged
from sandbox.scenarios.lookup import category_id, currency_id, project_with_contract_line
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks

TAX_PERCENT = 10.0
INVOICE_POSTED = 192350002  # msdyn_customerinvoice.msdyn_invoicestatus (customer_invoices map)


async def run(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 0)
    contract = await p.dataverse.get("salesorders", pr.contract_id)
    # Finance's accounting attributes of the contract: a sales tax group (set in Finance only)
    group = f"S{uuid.uuid4().hex[:5].upper()}"
    await p.finance.create("SalesTaxGroups", {"dataAreaId": pr.area, "TaxGroup": group, "Percentage": TAX_PERCENT})
    await p.finance.patch("ProjCDSProjectContracts", {"dataAreaId": pr.area, "ProjectContractID": contract["ordernumber"]},
                          {"SalesTaxGroup": group})
    cur = await currency_id(p, pr.accounting_currency)
    common: dict[str, Any] = dict(classification=CLASS_TIME, quantity=4.0, currency_id=cur,
                  category_id=await category_id(p, "Standard time"), task_id=None, date=pr.start)
    cost = await new_actual(p, pr, ttype=TYPE_COST, price=90.0, description="Scenario billable time: cost", **common)
    sales = await new_actual(p, pr, ttype=TYPE_UNBILLED, price=150.0, description="Scenario billable time",
                             on_contract=True, **common)
    await connect(p, cost, TYPE_COST, sales, TYPE_UNBILLED)
    await p.wait()

    unbilled = [u for u in await p.dataverse.query(
        "msdyn_actuals", f"_msdyn_contract_value eq {pr.contract_id} and msdyn_transactiontypecode eq {TYPE_UNBILLED} "
                         "and msdyn_skipsync eq false")
        if not await p.dataverse.query("msdyn_transactionconnections",
                                       f"msdyn_transaction1 eq '{u['msdyn_actualid']}' and "
                                       f"msdyn_transaction2typecode eq {TYPE_BILLED}")]
    to_bill = round(sum(float(u["msdyn_amount"]) for u in unbilled), 2)
    number = f"SCN-INV{uuid.uuid4().hex[:5].upper()}"
    invoice = str(uuid.uuid4())
    await p.dataverse.create("invoices", {
        "invoiceid": invoice, "name": "Scenario proforma invoice", "invoicenumber": number,
        "msdyn_invoicedate": pr.start, "msdyn_proformastatus": 192350000,
        "msdyn_company@odata.bind": f"/cdm_companies({pr.company_id})",
        "salesorderid@odata.bind": f"/salesorders({pr.contract_id})",
        **({"customerid@odata.bind": f"/accounts({contract['_customerid_value']})"}
           if contract.get("_customerid_value") else {}),
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({cur})"})
    await p.dataverse.patch("invoices", invoice, {"msdyn_proformastatus": PROFORMA_CONFIRMED})
    await p.dataverse.run_flow("confirm-proformas")  # what Confirm does in Project Operations
    await p.wait()

    proposal = await p.finance.find("ProjCDSInvoiceProposals", {"dataAreaId": pr.area, "ProposalId": number})
    c.check("Finance: the confirmed proforma is an invoice proposal", proposal is not None, number)
    billed = await p.dataverse.query("msdyn_actuals", f"_msdyn_invoice_value eq {invoice}")
    billed_sales = [b for b in billed if b["msdyn_transactiontypecode"] == TYPE_BILLED]
    reversals = [b for b in billed if b["msdyn_transactiontypecode"] == TYPE_UNBILLED]
    c.equal("Dataverse: one billed-sales actual and one reversal per unbilled-sales actual",
            (len(billed_sales), len(reversals)), (len(unbilled), len(unbilled)))
    c.equal("Dataverse: billed sales total the unbilled sales", round(sum(float(b["msdyn_amount"])
                                                                          for b in billed_sales), 2), to_bill)
    c.check("Dataverse: reversals are Skip Sync and negative",
            all(r["msdyn_skipsync"] and float(r["msdyn_amount"]) < 0 for r in reversals))
    reversals_staged = [await staged(p, pr.area, r["msdyn_actualid"]) for r in reversals]
    billed_staged = [await staged(p, pr.area, b["msdyn_actualid"]) for b in billed_sales]
    c.check("Finance: the reversals are not staged (Skip Sync)", all(r is None for r in reversals_staged))
    c.check("Finance: every billed-sales actual is staged", all(r is not None for r in billed_staged))
    links = await p.dataverse.query("msdyn_transactionconnections",
                                    f"msdyn_transaction1 eq '{sales}' and msdyn_transaction2typecode eq {TYPE_BILLED}")
    c.check("Dataverse: the scenario's unbilled sales is connected to its billed sales", len(links) == 1)

    for flow in ("import-actuals", "post-journals", "post-invoices"):
        await p.finance.run_flow(flow)
    await p.wait()
    posted = await p.finance.query("ProjInvoiceProposalExports", "dataAreaId eq {} and ProposalId eq {}", pr.area, number)
    if not c.check("Finance: the invoice is posted", len(posted) == 1 and posted[0]["InvoiceStatus"] == "Posted",
                   str(posted)):
        return
    inv = posted[0]
    tax = round(sum(round(float(b["msdyn_amount"]) * TAX_PERCENT / 100, 2) for b in billed_sales), 2)
    c.equal("Finance: invoice amount = billed sales + sales tax of the contract's tax group",
            (float(inv["InvoiceAmount"]), float(inv["SalesTaxAmount"])), (round(to_bill + tax, 2), tax))
    rows = [await staged(p, pr.area, b["msdyn_actualid"]) or {} for b in billed_sales]
    c.check("Finance: billed-sales staging rows carry the invoice and voucher",
            all(r.get("InvoiceId") == inv["InvoiceId"] == r.get("Voucher") and r.get("Status") == "Posted"
                for r in rows), inv["InvoiceId"])
    back = await p.dataverse.query("msdyn_customerinvoices", f"msdyn_invoicenumber eq '{inv['InvoiceId']}'")
    c.equal("Dataverse: the posted invoice is back (status, amount, tax)",
            [(b.get("msdyn_invoicestatus"), float(b.get("msdyn_totalamount") or 0), float(b.get("msdyn_taxamount") or 0))
             for b in back], [(INVOICE_POSTED, float(inv["InvoiceAmount"]), tax)])
    actuals = [await p.dataverse.get("msdyn_actuals", b["msdyn_actualid"]) for b in billed_sales]
    c.check("Dataverse: billed-sales actuals have the invoice voucher and their sales tax",
            all(a.get("msdyn_voucher") == inv["InvoiceId"] and float(a.get("msdyn_salestaxamount") or 0) ==
                round(float(a["msdyn_amount"]) * TAX_PERCENT / 100, 2) for a in actuals),
            str([(a.get("msdyn_voucher"), a.get("msdyn_salestaxamount")) for a in actuals]))
