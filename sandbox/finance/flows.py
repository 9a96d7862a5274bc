"""What Finance does after a sync (po-maps.md §3-§6), so scenarios can watch the whole flow.

Flows, each runnable on demand (``FinanceEmulator.run_flow``, ``POST /_control/flows/run``) or on a
schedule (``flows_every`` seconds):

- ``import-actuals``: Import from staging. Each ``ProjCDSActualsImports`` row not yet imported becomes an
  integration journal line (cost, unbilled sales, ...) or an invoice-proposal line (billed sales). A
  row that cannot be imported keeps ``Status = Error`` and an ``ErrorMessage`` saying what to fix
  (missing exchange rate: currency pair and date; missing project category in the legal entity) and
  is retried on the next run.
- ``post-journals``: posts draft journal lines: voucher from the number sequence, accounting-currency
  amount through the exchange rate of the accounting date, sales tax from the sales tax group, and the
  expense / procurement integration account cleared; writes the result back to the staging row.
- ``post-expenses`` / ``post-vendor-invoices``: posts approved expenses and pending vendor invoices
  against the expense / procurement integration account (unknown vendor or unit: error on the row).
- ``post-invoices``: posts invoice proposals that have lines; the posted invoice appears in
  ``ProjInvoiceProposalExports`` and the billed-sales staging rows get voucher, amounts and tax.
- ``all``: the above in that order (expenses and vendor invoices, import, journals, invoices).

Every committed change is returned as a :class:`Change`, so the caller emits its business event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.finance.schema import COMPANY_FIELD, Entity, Schema, parse_body_value
from sandbox.finance.service import Change, FinanceService, ODataRequest, ODataResponse
from sandbox.finance.store import Store, q

STAGING = "ProjCDSActualsImports"
JOURNAL = "ProjOpsIntegrationJournalLines"
PROPOSAL_LINES = "ProjOpsInvoiceProposalLines"
ENTRIES = "ProjOpsIntegrationAccountEntries"
SALES_TYPES = {"UnbilledSales", "BilledSales", "InterOrganizationalSales"}
# default formats of the number sequences the flows draw from (created on first use)
SEQUENCES = {"ProjJournal": "PJ-######", "ProjVoucher": "PRJV-######", "ExpVoucher": "EXPV-######",
             "APVoucher": "APV-######", "ProjInvoice": "PINV-######"}


class FlowProblem(Exception):
    """A row a flow cannot process; the message is stored on the row, for the user to act on."""


@dataclass
class FlowReport:
    flow: str
    processed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list, repr=False)

    def describe(self) -> dict[str, Any]:
        return {"flow": self.flow, "processed": self.processed, "failed": self.failed,
                "changes": len(self.changes)}


def date_of(value: Any) -> str:
    return str(value or "")[:10]


class FinanceFlows:
    def __init__(self, schema: Schema, store: Store) -> None:
        self.schema, self.store = schema, store
        self.flows: dict[str, Callable[[FlowReport], None]] = {
            "post-expenses": self.post_expenses, "post-vendor-invoices": self.post_vendor_invoices,
            "import-actuals": self.import_actuals, "post-journals": self.post_journals,
            "post-invoices": self.post_invoices}

    @property
    def names(self) -> list[str]:
        return [*self.flows, "all"]

    def run(self, name: str) -> list[FlowReport]:
        if name == "all":
            return [self.run(n)[0] for n in self.flows]
        flow = self.flows.get(name)
        if flow is None:
            raise ValueError(f"unknown flow {name!r}; known: {', '.join(self.names)}")
        report = FlowReport(name)
        with self.store.transaction():
            flow(report)
        return [report]

    # --- rows -------------------------------------------------------------------------------------

    def _ent(self, entity_set: str) -> Entity:
        ent = self.schema.entity(entity_set)
        assert ent is not None, entity_set
        return ent

    def _select(self, entity_set: str, where: str = "", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return self.store.select(self._ent(entity_set), where, list(params), "", None, 0)

    def _one(self, entity_set: str, **match: Any) -> dict[str, Any] | None:
        where = " AND ".join(f"{q(k)} = ?" for k in match)
        rows = self._select(entity_set, where, match.values())
        return rows[0] if rows else None

    def _coerce(self, ent: Entity, values: dict[str, Any]) -> dict[str, Any]:
        return {k: (parse_body_value(self.schema, ent.fields[k], v) if v is not None else None)
                for k, v in values.items()}

    def _insert(self, report: FlowReport, entity_set: str, values: dict[str, Any]) -> None:
        ent = self._ent(entity_set)
        stored = self.store.insert(ent, self._coerce(ent, values))
        report.changes.append(Change(ent, "Create", {k: stored[k] for k in ent.key}, stored["_rv"]))

    def _update(self, report: FlowReport, entity_set: str, row: dict[str, Any], values: dict[str, Any]) -> None:
        ent = self._ent(entity_set)
        changes = {k: v for k, v in self._coerce(ent, values).items() if row.get(k) != v}
        if not changes:
            return  # nothing new: no write, no event (the schedule reruns flows often)
        key = {k: row[k] for k in ent.key}
        written = self.store.update(ent, key, changes)
        row.update(changes)
        report.changes.append(Change(ent, "Update", key, written["_rv"]))

    def _fail(self, report: FlowReport, entity_set: str, row: dict[str, Any], message: str,
              extra: dict[str, Any] | None = None) -> None:
        key = ",".join(str(row[k]) for k in self._ent(entity_set).key)
        report.failed.append({"entity_set": entity_set, "key": key, "message": message})
        self._update(report, entity_set, row, {"ErrorMessage": message, **(extra or {})})

    # --- reference data ---------------------------------------------------------------------------

    def accounting_currency(self, company: str) -> str:
        le = self._one("LegalEntities", LegalEntityId=company)
        if le is None or not le.get("AccountingCurrency"):
            raise FlowProblem(f"Legal entity {company.upper()} has no accounting currency. Set it on the "
                              "legal entity (or its ledger), then run the flow again.")
        return str(le["AccountingCurrency"]).upper()

    def exchange_rate(self, from_cur: str, to_cur: str, on: str) -> float:
        """The rate in force on ``on`` (latest start date not after it); the inverse rate if only that exists."""
        if from_cur.upper() == to_cur.upper():
            return 1.0
        day = f"{on}T00:00:00Z"
        for a, b, invert in ((from_cur, to_cur, False), (to_cur, from_cur, True)):
            rows = self._select("ExchangeRates", f'{q("FromCurrency")} = ? AND {q("ToCurrency")} = ? AND '
                                f'{q("StartDate")} <= ? AND ({q("EndDate")} IS NULL OR {q("EndDate")} >= ?)',
                                [a, b, day, day])
            if rows:
                rate = float(max(rows, key=lambda r: str(r["StartDate"]))["Rate"])
                return 1 / rate if invert else rate
        raise FlowProblem(f"No exchange rate from {from_cur.upper()} to {to_cur.upper()} on {on}. Add it under "
                          "Currency exchange rates; the line is imported on the next run.")

    def next_number(self, report: FlowReport, company: str, code: str) -> str:
        row = self._one("NumberSequences", dataAreaId=company, NumberSequenceCode=code)
        if row is None:
            self._insert(report, "NumberSequences", {COMPANY_FIELD: company, "NumberSequenceCode": code,
                                                     "Format": SEQUENCES[code], "NextNumber": 1})
            row = self._one("NumberSequences", dataAreaId=company, NumberSequenceCode=code)
            assert row is not None
        number = int(row["NextNumber"])
        fmt = str(row["Format"])
        self._update(report, "NumberSequences", row, {"NextNumber": number + 1})
        m = re.search(r"#+", fmt)
        return fmt[:m.start()] + str(number).zfill(m.end() - m.start()) + fmt[m.end():] if m else f"{fmt}{number}"

    def tax_percent(self, company: str, group: str | None) -> float:
        if not group:
            return 0.0
        row = self._one("SalesTaxGroups", dataAreaId=company, TaxGroup=group)
        if row is None:
            raise FlowProblem(f"Sales tax group '{group}' does not exist in legal entity {company.upper()}. "
                              "Create it under Sales tax groups, then post again.")
        return float(row["Percentage"])

    def _entry(self, report: FlowReport, company: str, voucher: str, account: str, amount_mst: float,
               source: str, on: str) -> None:
        n = len(self._select(ENTRIES, f'{q("Voucher")} = ?', [voucher])) + 1
        self._insert(report, ENTRIES, {COMPANY_FIELD: company, "EntryId": f"{voucher}/{n}", "Voucher": voucher,
                                       "Account": account, "AmountMST": round(amount_mst, 2),
                                       "SourceDocument": source, "AccountingDate": on})

    # --- import from staging ----------------------------------------------------------------------

    def import_actuals(self, report: FlowReport) -> None:
        pending = self._select(STAGING, f'({q("Status")} IS NULL OR {q("Status")} IN (\'\', \'Error\')) AND '
                               f'({q("IsJournalized")} IS NULL OR {q("IsJournalized")} = \'No\')')
        journals: dict[str, str] = {}
        for row in pending:
            company = str(row[COMPANY_FIELD])
            try:
                self._import_one(report, row, company, journals)
            except FlowProblem as exc:
                self._fail(report, STAGING, row, str(exc), {"Status": "Error", "StatusReason": "ImportFailed"})
                continue
            report.processed += 1

    def _import_one(self, report: FlowReport, row: dict[str, Any], company: str, journals: dict[str, str]) -> None:
        category = row.get("TransactionCategory")
        if category and self._one("ProjectCategories", dataAreaId=company, CategoryId=category) is None:
            raise FlowProblem(f"Project category '{category}' does not exist in legal entity {company.upper()}. "
                              f"Create a project category for shared category '{category}' in {company.upper()}, "
                              "then run Import from staging again.")
        on = date_of(row["AccountingDate"])
        currency = str(row["TransactionCurrencyId"]).upper()
        rate = self.exchange_rate(currency, self.accounting_currency(company), on)
        contract = self._one("ProjCDSProjectContracts", dataAreaId=company, ProjectContractID=row.get("ContractId")) \
            if row.get("ContractId") else None
        tax_group = contract.get("SalesTaxGroup") if contract and row.get("TransType") in SALES_TYPES else None
        if row.get("TransType") == "BilledSales":
            proposals = [p for p in self._select("ProjCDSInvoiceProposals", f'{q(COMPANY_FIELD)} = ? AND '
                                                 f'{q("ProjectContractID")} = ?', [company, row.get("ContractId")])
                         if self._one("ProjInvoiceProposalExports", dataAreaId=company,
                                      ProposalId=p["ProposalId"]) is None]
            if not proposals:
                raise FlowProblem(f"No open invoice proposal for project contract '{row.get('ContractId')}' in "
                                  f"{company.upper()}: confirm the proforma invoice in Dataverse first.")
            self._insert(report, PROPOSAL_LINES, {
                COMPANY_FIELD: company, "ActualId": row["ActualId"], "ProposalId": proposals[-1]["ProposalId"],
                "ProjectId": row["ProjectId"], "ContractId": row.get("ContractId"), "AccountingDate": on,
                "Quantity": row.get("Quantity"), "Amount": row["Amount"], "CurrencyCode": currency,
                "ExchangeRate": rate, "SalesTaxGroup": tax_group})
        else:
            if company not in journals:
                journals[company] = self.next_number(report, company, "ProjJournal")
            classification = row.get("TransactionClassification")
            offset = ("ExpenseIntegration" if classification == "Expense" else
                      "ProcurementIntegration" if classification == "Material" else None)
            self._insert(report, JOURNAL, {
                COMPANY_FIELD: company, "ActualId": row["ActualId"], "JournalId": journals[company],
                "ProjectId": row["ProjectId"], "CategoryId": category, "TransType": row.get("TransType"),
                "TransactionClassification": classification, "LineProperty": row.get("BillingType"),
                "AccountingDate": on, "Quantity": row.get("Quantity"), "Amount": row["Amount"],
                "CurrencyCode": currency, "ExchangeRate": rate, "SalesTaxGroup": tax_group,
                "OffsetAccount": offset if row.get("TransType") == "Cost" else None, "LineStatus": "Draft"})
        self._update(report, STAGING, row, {"Status": "Imported", "StatusReason": "", "ErrorMessage": None,
                                            "ExchangeRate": rate, "ExchangeRateDate": on})

    # --- posting ----------------------------------------------------------------------------------

    def post_journals(self, report: FlowReport) -> None:
        for line in self._select(JOURNAL, f'{q("LineStatus")} IN (\'Draft\', \'Error\')'):
            company = str(line[COMPANY_FIELD])
            staging = self._one(STAGING, dataAreaId=company, ActualId=line["ActualId"])
            on = date_of(line["AccountingDate"])
            try:
                rate = self.exchange_rate(str(line["CurrencyCode"]), self.accounting_currency(company), on)
                tax = round(float(line["Amount"]) * self.tax_percent(company, line.get("SalesTaxGroup")) / 100, 2)
            except FlowProblem as exc:
                self._fail(report, JOURNAL, line, str(exc), {"LineStatus": "Error"})
                if staging is not None:
                    self._fail(report, STAGING, staging, str(exc), {"StatusReason": "PostingFailed"})
                continue
            amount_mst = round(float(line["Amount"]) * rate, 2)
            voucher = self.next_number(report, company, "ProjVoucher")
            if line.get("OffsetAccount"):  # posting clears the integration account into project cost
                self._entry(report, company, voucher, "ProjectCost", amount_mst, line["ActualId"], on)
                self._entry(report, company, voucher, str(line["OffsetAccount"]), -amount_mst, line["ActualId"], on)
            elif line.get("TransType") == "UnbilledSales":
                self._entry(report, company, voucher, "UnbilledRevenue", amount_mst, line["ActualId"], on)
            self._update(report, JOURNAL, line, {"LineStatus": "Posted", "Voucher": voucher, "ExchangeRate": rate,
                                                 "AmountMST": amount_mst, "SalesTaxAmount": tax, "ErrorMessage": None})
            if staging is not None:
                self._update(report, STAGING, staging, self._result(amount_mst, rate, voucher, tax, staging))
            report.processed += 1

    @staticmethod
    def _result(amount_mst: float, rate: float, voucher: str, tax: float, staging: dict[str, Any]) -> dict[str, Any]:
        qty = float(staging.get("Quantity") or 0)
        return {"AmountMST": amount_mst, "ExchangeRate": rate, "Voucher": voucher, "SalesTaxAmount": tax,
                "UnitPriceMST": round(amount_mst / qty, 2) if qty else None, "IsJournalized": "Yes",
                "Status": "Posted", "StatusReason": "", "ErrorMessage": None}

    def post_expenses(self, report: FlowReport) -> None:
        for row in self._select("ProjExpenseExports", f'{q("ApprovalStatus")} = \'Approved\''):
            company = str(row[COMPANY_FIELD])
            on = date_of(row["TransactionDate"])
            try:
                rate = self.exchange_rate(str(row["CurrencyCode"]), self.accounting_currency(company), on)
            except FlowProblem as exc:
                self._fail(report, "ProjExpenseExports", row, str(exc))
                continue
            voucher = self.next_number(report, company, "ExpVoucher")
            amount_mst = round(float(row["Amount"]) * rate, 2)
            self._entry(report, company, voucher, "ExpenseIntegration", amount_mst, row["ExpenseNumber"], on)
            self._entry(report, company, voucher, "AccountsPayable", -amount_mst, row["ExpenseNumber"], on)
            self._update(report, "ProjExpenseExports", row, {"ApprovalStatus": "Posted", "Voucher": voucher,
                                                             "ErrorMessage": None})
            report.processed += 1

    def post_vendor_invoices(self, report: FlowReport) -> None:
        headers = self._select("ProjVendInvoiceHeaderExports",
                               f'{q("PostingStatus")} IS NULL OR {q("PostingStatus")} IN (\'Pending\', \'Error\')')
        for head in headers:
            company = str(head[COMPANY_FIELD])
            lines = self._select("ProjVendInvoiceLineExports", f'{q(COMPANY_FIELD)} = ? AND {q("VendorInvoiceId")} = ?',
                                 [company, head["VendorInvoiceId"]])
            on = date_of(head["InvoiceDate"])
            try:
                self._check_vendor_invoice(company, head, lines)
                rate = self.exchange_rate(str(head["CurrencyCode"]), self.accounting_currency(company), on)
            except FlowProblem as exc:
                self._fail(report, "ProjVendInvoiceHeaderExports", head, str(exc), {"PostingStatus": "Error"})
                continue
            voucher = self.next_number(report, company, "APVoucher")
            project_total = round(sum(float(ln["LineAmount"]) for ln in lines if ln.get("ProjectId")) * rate, 2)
            self._entry(report, company, voucher, "ProcurementIntegration", project_total, head["VendorInvoiceId"], on)
            self._entry(report, company, voucher, "AccountsPayable", -project_total, head["VendorInvoiceId"], on)
            self._update(report, "ProjVendInvoiceHeaderExports", head, {
                "PostingStatus": "Posted", "Voucher": voucher, "ErrorMessage": None,
                "HasProjectLine": "Yes" if any(ln.get("ProjectId") for ln in lines) else "No"})
            report.processed += 1

    def _check_vendor_invoice(self, company: str, head: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        if self._one("VendorsV2", dataAreaId=company, VendorAccountNumber=head["VendorAccountNumber"]) is None:
            raise FlowProblem(f"Vendor account '{head['VendorAccountNumber']}' does not exist in legal entity "
                              f"{company.upper()}. Create the vendor (and sync it), then post the invoice again.")
        if not lines:
            raise FlowProblem(f"Vendor invoice '{head['VendorInvoiceId']}' has no lines.")
        for ln in lines:
            unit = ln.get("UnitOfMeasure")
            if unit and self._one("UnitsOfMeasure", UnitSymbol=unit) is None:
                raise FlowProblem(f"Unit of measure '{unit}' on vendor invoice line '{ln['ExternalInvoiceLine']}' "
                                  "does not exist. Create the unit (and sync Units), then post the invoice again.")

    def post_invoices(self, report: FlowReport) -> None:
        for proposal in self._select("ProjCDSInvoiceProposals"):
            company = str(proposal[COMPANY_FIELD])
            if self._one("ProjInvoiceProposalExports", dataAreaId=company, ProposalId=proposal["ProposalId"]):
                continue
            lines = self._select(PROPOSAL_LINES, f'{q(COMPANY_FIELD)} = ? AND {q("ProposalId")} = ?',
                                 [company, proposal["ProposalId"]])
            if not lines:
                continue  # lines come from Import from staging of the billed-sales actuals
            try:
                taxes = [round(float(ln["Amount"]) * self.tax_percent(company, ln.get("SalesTaxGroup")) / 100, 2)
                         for ln in lines]
            except FlowProblem as exc:
                report.failed.append({"entity_set": "ProjCDSInvoiceProposals", "key": proposal["ProposalId"],
                                      "message": str(exc)})
                continue
            invoice_id = self.next_number(report, company, "ProjInvoice")
            amount = round(sum(float(ln["Amount"]) for ln in lines), 2)
            on = date_of(proposal["InvoiceDate"])
            self._insert(report, "ProjInvoiceProposalExports", {
                COMPANY_FIELD: company, "InvoiceId": invoice_id, "ProposalId": proposal["ProposalId"],
                "ProjectContractID": proposal["ProjectContractID"], "InvoiceDate": on,
                "CurrencyCode": proposal["CurrencyCode"], "InvoiceAmount": round(amount + sum(taxes), 2),
                "SalesTaxAmount": round(sum(taxes), 2), "InvoiceStatus": "Posted"})
            for ln, tax in zip(lines, taxes, strict=True):
                rate = float(ln.get("ExchangeRate") or 1.0)
                amount_mst = round(float(ln["Amount"]) * rate, 2)
                self._entry(report, company, invoice_id, "AccountsReceivable", amount_mst + tax, ln["ActualId"], on)
                self._entry(report, company, invoice_id, "Revenue", -amount_mst, ln["ActualId"], on)
                self._update(report, PROPOSAL_LINES, ln, {"InvoiceId": invoice_id, "SalesTaxAmount": tax})
                staging = self._one(STAGING, dataAreaId=company, ActualId=ln["ActualId"])
                if staging is not None:
                    self._update(report, STAGING, staging,
                                 {**self._result(amount_mst, rate, invoice_id, tax, staging), "InvoiceId": invoice_id})
            report.processed += 1


# Finance's project transaction types: one shared category each per synced transaction category (po-maps.md §2)
SHARED_CATEGORY_TYPES = ("Hour", "Expense", "Item", "Fee")
# estimate staging entity -> (forecast entity, its key field in the staging row) (po-maps.md §3)
FORECASTS = {"ProjCDSEstimateHours": ("ProjHourForecasts", "EstimateId"),
             "ProjCDSEstimateExpensesImports": ("ProjExpenseForecasts", "EstimateLineId"),
             "ProjCDSEstimateMaterialImports": ("ProjItemForecasts", "EstimateLineId")}


FOLLOWED = {"ProjCDSCategories", "ProjCDSResourceRoles", "LegalEntities", *FORECASTS}


class FinanceFollowUp(FinanceFlows):
    """What Finance's entity logic does, in the same request, when dual-write writes setup or estimates:

    - a transaction category (``ProjCDSCategories``) -> one shared category per transaction type;
    - a resource role (``ProjCDSResourceRoles``) -> a company-specific role in every legal entity, and a
      new legal entity gets every role;
    - an estimate row (hour, expense, material staging) -> its hour, expense or item forecast; deleting
      the estimate deletes the forecast.
    """

    def follow(self, changes: list[Change]) -> list[Change]:
        report = FlowReport("follow-up")
        for change in changes:
            name = change.entity.entity_set
            if name == "ProjCDSCategories" and change.operation != "Delete":
                self._shared_categories(report, change.keys)
            elif name == "ProjCDSResourceRoles" and change.operation != "Delete":
                role = self._one(name, **change.keys)
                for le in self._select("LegalEntities"):
                    self._company_role(report, str(le["LegalEntityId"]).lower(), role)
            elif name == "LegalEntities" and change.operation == "Create":
                for role in self._select("ProjCDSResourceRoles"):
                    self._company_role(report, str(change.keys["LegalEntityId"]).lower(), role)
            elif name in FORECASTS:
                self._forecast(report, change)
        return report.changes

    def _upsert(self, report: FlowReport, entity_set: str, key: dict[str, Any], values: dict[str, Any]) -> None:
        row = self._one(entity_set, **key)
        if row is None:
            self._insert(report, entity_set, {**key, **values})
        else:
            self._update(report, entity_set, row, values)

    def _shared_categories(self, report: FlowReport, key: dict[str, Any]) -> None:
        category = self._one("ProjCDSCategories", **key)
        if category is None:
            return
        for ttype in SHARED_CATEGORY_TYPES:
            self._upsert(report, "ProjSharedCategories", {"CategoryId": category["CategoryId"], "TransactionType": ttype},
                         {"CategoryName": category.get("Name"), "CanBeUsedInProject": "Yes",
                          "CanBeUsedInExpense": "No", "IntegrationId": category.get("IntegrationId")})

    def _company_role(self, report: FlowReport, company: str, role: dict[str, Any] | None) -> None:
        if role is None:
            return
        self._upsert(report, "ProjResourceRoles", {COMPANY_FIELD: company, "ResourceRoleId": role["ResourceRoleId"]},
                     {"Name": role.get("Name"), "IntegrationId": role.get("IntegrationId")})

    def _forecast(self, report: FlowReport, change: Change) -> None:
        target, id_field = FORECASTS[change.entity.entity_set]
        key = {COMPANY_FIELD: change.keys[COMPANY_FIELD], "ForecastId": change.keys[id_field]}
        if change.operation == "Delete":
            row = self._one(target, **key)
            if row is not None:
                ent = self._ent(target)
                self.store.delete(ent, key)
                report.changes.append(Change(ent, "Delete", key, self.store.next_rv()))
            return
        est = self._one(change.entity.entity_set, **change.keys)
        if est is None:
            return
        common = {"ProjectId": est.get("ProjectId"), "TaskId": est.get("TaskId")}
        if target == "ProjHourForecasts":
            hours = float(est.get("Duration") or 0)
            cost, sales = est.get("PlannedCostAmount"), est.get("PlannedSalesAmount")
            self._upsert(report, target, key, {
                **common, "ModelId": est.get("ForecastModel"), "ResourceId": est.get("ResourceId"),
                "ForecastDate": date_of(est.get("StartDate")) or None, "Hours": hours,
                "CostAmount": cost, "SalesAmount": sales,
                "CostPrice": round(float(cost) / hours, 2) if cost is not None and hours else None,
                "SalesPrice": round(float(sales) / hours, 2) if sales is not None and hours else None,
                "CurrencyCode": est.get("SalesCurrency"), "ExchangeRate": est.get("ExchangeRate")})
            return
        qty, price = float(est.get("Quantity") or 0), est.get("Price")
        # a cost estimate prices the forecast's cost, a sales estimate its sales price (po-maps.md §3)
        price_field = "CostPrice" if est.get("TransType") in (None, "Cost") else "SalesPrice"
        values = {**common, "ModelId": est.get("ModelId"), "CategoryId": est.get("TransactionCategory"),
                  "TransType": est.get("TransType"), "ForecastDate": date_of(est.get("DocumentDate")) or None,
                  "Quantity": qty, price_field: price,
                  "Amount": round(qty * float(price), 2) if price is not None else None,
                  "CurrencyCode": est.get("CurrencyId")}
        if target == "ProjExpenseForecasts":
            values["ExchangeRate"] = est.get("ExchangeRate")
        else:
            values["ItemId"] = est.get("ItemId")
        self._upsert(report, target, key, values)


class FlowAwareService(FinanceService):
    """The OData service plus the one import precondition dualsync surfaces at the staging write: a
    missing exchange rate. Real Finance accepts the row and logs the error at import; answering the
    write with it puts the actual in dualsync's error store, named and replayable (docs/scenarios.md)."""

    def handle(self, req: ODataRequest) -> ODataResponse:
        resp = super().handle(req)
        if resp.status < 400 and any(c.entity.entity_set in FOLLOWED for c in resp.changes):
            # Finance's entity logic runs with the write; the derived rows emit their own events
            with self.store.transaction():
                resp.changes.extend(FinanceFollowUp(self.schema, self.store).follow(resp.changes))
        return resp

    def validate_row(self, ent: Entity, row: dict[str, Any], changed: set[str] | None = None) -> None:
        if ent.entity_set == STAGING:
            self._check_project_category(ent, row, changed)
        super().validate_row(ent, row, changed)
        if ent.entity_set != STAGING or not row.get("TransactionCurrencyId") or not row.get("AccountingDate"):
            return
        if changed is not None and not changed & {"TransactionCurrencyId", "AccountingDate"}:
            return
        company = str(row.get(COMPANY_FIELD) or self.options.default_company)
        legal_entities = self.schema.entity("LegalEntities")
        assert legal_entities is not None
        # one value, not the row: this runs for every staging write
        accounting_currency = self.store.first_value(legal_entities, "AccountingCurrency", LegalEntityId=company)
        if not accounting_currency:
            return  # no accounting setup to check against (import reports it)
        flows = FinanceFlows(self.schema, self.store)
        try:
            flows.exchange_rate(str(row["TransactionCurrencyId"]), str(accounting_currency),
                                date_of(row["AccountingDate"]))
        except FlowProblem as exc:
            raise self._fail(ent, [f"Warning: {exc}"]) from None

    def _check_project_category(self, ent: Entity, row: dict[str, Any], changed: set[str] | None) -> None:
        """The staging relation to project categories, said the way import says it: which category is
        missing in which legal entity (the generic relation message names neither the fix nor the company)."""
        category = row.get("TransactionCategory")
        if not category or (changed is not None and "TransactionCategory" not in changed):
            return
        company = str(row.get(COMPANY_FIELD) or self.options.default_company)
        flows = FinanceFlows(self.schema, self.store)
        if flows._one("ProjectCategories", dataAreaId=company.lower(), CategoryId=category) is None:
            raise self._fail(ent, [
                f"Warning: Project category '{category}' does not exist in legal entity {company.upper()}. Create "
                f"a project category for shared category '{category}' in {company.upper()}, then replay the actual."])


__all__ = ["FinanceFlows", "FinanceFollowUp", "FlowAwareService", "FlowProblem", "FlowReport"]
