"""What Project Operations does in Dataverse after a sync (po-maps.md §4-§6), as on-demand flows.

- ``approve-expenses``: an expense synced from Finance (approved or posted there) is approved
  automatically and creates Expense actuals: cost and, when the project has a contract line,
  unbilled sales, linked by a transaction connection.
- ``approve-vendor-invoices``: each line of a vendor invoice synced from Finance creates Material
  cost actuals (and unbilled sales on a contract), and the invoice is marked approved.
- ``confirm-proformas``: confirming a proforma invoice (``msdyn_proformastatus`` = Confirmed) creates
  billed-sales actuals for the contract's unbilled sales, plus the negative unbilled-sales reversal
  (Skip Sync, po-maps.md §3), each linked by a transaction connection.
- ``all``: the three in that order.

Writes go through the Web API service, so each one emits its webhook / Service Bus notification.
:class:`FlowAwareService` adds the plug-in check Project Operations makes on an expense: its task
must be a leaf task (the documented "Could not resolve project task for export expense" error).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.dataverse import errors
from sandbox.dataverse.schema import Table
from sandbox.dataverse.service import ApiRequest, DataverseService

# option values (CE entity reference msdyn_actual, msdyn_expense; transaction_connections map)
CLASS_EXPENSE, CLASS_MATERIAL, CLASS_TIME = 192350001, 192350002, 192350000
TYPE_COST, TYPE_UNBILLED, TYPE_BILLED = 192350000, 192350005, 192350006
ROLE_COST, ROLE_UNBILLED, ROLE_BILLED = 192350000, 192350001, 192350002
BILLING_CHARGEABLE = 192350001
EXPENSE_APPROVED, EXPENSE_POSTED = 192350002, 192350004
VENDOR_INVOICE_APPROVED = 192350001
PROFORMA_CONFIRMED = 192350001
ROLE_OF_TYPE = {TYPE_COST: ROLE_COST, TYPE_UNBILLED: ROLE_UNBILLED, TYPE_BILLED: ROLE_BILLED}
BASE = "http://dataverse.flows"


@dataclass
class FlowReport:
    flow: str
    processed: int = 0
    created: list[str] = field(default_factory=list)  # "msdyn_actuals(<id>)"

    def describe(self) -> dict[str, Any]:
        return {"flow": self.flow, "processed": self.processed, "created": self.created}


class DataverseFlows:
    def __init__(self, service: DataverseService) -> None:
        self.service = service
        self.flows: dict[str, Callable[[FlowReport], None]] = {
            "approve-expenses": self.approve_expenses, "approve-vendor-invoices": self.approve_vendor_invoices,
            "confirm-proformas": self.confirm_proformas}

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
        flow(report)
        return [report]

    # --- Web API calls (one unit each: committed, then notified) -----------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              query: dict[str, str] | None = None) -> Any:
        resp = self.service.handle(ApiRequest(method, path, query or {}, {"content-type": "application/json"},
                                              json.dumps(body).encode() if body is not None else b""), BASE)
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {resp.body.decode()}")
        if resp.status == 204:
            return resp.headers.get("odata-entityid", "").rsplit("(", 1)[-1].rstrip(")")
        return resp.json()

    def _query(self, entity_set: str, flt: str) -> list[dict[str, Any]]:
        return list(self._call("GET", entity_set, query={"$filter": flt})["value"])

    def _create(self, report: FlowReport, entity_set: str, body: dict[str, Any]) -> str:
        rid = str(self._call("POST", entity_set, body))
        report.created.append(f"{entity_set}({rid})")
        return rid

    @staticmethod
    def _bind(row: dict[str, Any], column: str, entity_set: str, nav: str | None = None) -> dict[str, str]:
        value = row.get(f"_{column}_value")
        return {f"{nav or column}@odata.bind": f"/{entity_set}({value})"} if value else {}

    def _actual(self, report: FlowReport, source: dict[str, Any], *, description: str, classification: int,
                ttype: int, quantity: float, price: float, date: str | None, link: dict[str, str],
                contract_line: dict[str, Any] | None = None, skip_sync: bool = False,
                amount: float | None = None) -> str:
        body: dict[str, Any] = {
            "msdyn_description": description[:100], "msdyn_transactionclassification": classification,
            "msdyn_transactiontypecode": ttype, "msdyn_billingtype": BILLING_CHARGEABLE,
            "msdyn_quantity": quantity, "msdyn_price": price,
            "msdyn_amount": round(amount if amount is not None else quantity * price, 2),
            "msdyn_documentdate": date, "msdyn_accountingdate": date, "msdyn_skipsync": skip_sync,
            **self._bind(source, "msdyn_project", "msdyn_projects"),
            **self._bind(source, "transactioncurrencyid", "transactioncurrencies"),
            **self._bind(source, "msdyn_transactioncategory", "msdyn_transactioncategories"), **link}
        task = source.get("_msdyn_task_value") or source.get("_msdyn_projecttask_value")
        if task:
            body["msdyn_task@odata.bind"] = f"/msdyn_projecttasks({task})"
        company = source.get("_msdyn_company_value") or source.get("_msdyn_owningcompany_value")
        if company:
            body["msdyn_company@odata.bind"] = f"/cdm_companies({company})"
        if contract_line is not None:
            body["msdyn_contractline@odata.bind"] = f"/salesorderdetails({contract_line['salesorderdetailid']})"
            body["msdyn_contract@odata.bind"] = f"/salesorders({contract_line['_salesorderid_value']})"
        return self._create(report, "msdyn_actuals", body)

    def connect(self, report: FlowReport, first: str, first_type: int, second: str, second_type: int) -> str:
        return self._create(report, "msdyn_transactionconnections", {
            "msdyn_name": f"{first} -> {second}"[:100],
            "msdyn_transaction1": first, "msdyn_transaction1typecode": first_type,
            "msdyn_transaction1role": ROLE_OF_TYPE[first_type],
            "msdyn_transaction2": second, "msdyn_transaction2typecode": second_type,
            "msdyn_transaction2role": ROLE_OF_TYPE[second_type]})

    def _contract_line(self, project_id: str | None) -> dict[str, Any] | None:
        if not project_id:
            return None
        lines = self._query("salesorderdetails", f"_msdyn_project_value eq {project_id}")
        return lines[0] if lines else None

    def _with_sales(self, report: FlowReport, source: dict[str, Any], cost_id: str, classification: int,
                    description: str, quantity: float, price: float, date: str | None,
                    link: dict[str, str]) -> None:
        line = self._contract_line(source.get("_msdyn_project_value"))
        if line is None:
            return
        sales = self._actual(report, source, description=description, classification=classification,
                             ttype=TYPE_UNBILLED, quantity=quantity, price=price, date=date, link=link,
                             contract_line=line)
        self.connect(report, cost_id, TYPE_COST, sales, TYPE_UNBILLED)

    # --- flows --------------------------------------------------------------------------------------

    def approve_expenses(self, report: FlowReport) -> None:
        for exp in self._query("msdyn_expenses", f"msdyn_expensestatus eq {EXPENSE_APPROVED} or "
                                                 f"msdyn_expensestatus eq {EXPENSE_POSTED}"):
            eid = exp["msdyn_expenseid"]
            if self._query("msdyn_actuals", f"_msdyn_expense_value eq {eid}"):
                continue
            qty = float(exp.get("msdyn_quantity") or 1)
            amount = float(exp.get("msdyn_amount") or 0)
            price = round(amount / qty, 2) if qty else amount
            link = {"msdyn_expense@odata.bind": f"/msdyn_expenses({eid})"}
            date = exp.get("msdyn_transactiondate")
            name = exp.get("msdyn_name") or f"Expense {exp.get('msdyn_externalexpenseid')}"
            category = self._expense_category(exp)
            source = {**exp, **category}
            cost = self._actual(report, source, description=name, classification=CLASS_EXPENSE, ttype=TYPE_COST,
                                quantity=qty, price=price, date=date, link=link, amount=amount)
            self._with_sales(report, source, cost, CLASS_EXPENSE, name, qty, price, date, link)
            report.processed += 1

    def _expense_category(self, exp: dict[str, Any]) -> dict[str, Any]:
        cat = exp.get("_msdyn_expensecategory_value")
        if not cat:
            return {}
        row = self._call("GET", f"msdyn_expensecategories({cat})")
        return {"_msdyn_transactioncategory_value": row.get("_msdyn_transactioncategory_value")}

    def approve_vendor_invoices(self, report: FlowReport) -> None:
        for inv in self._query("msdyn_projectvendorinvoices", f"msdyn_invoicestatus ne {VENDOR_INVOICE_APPROVED} "
                                                              "or msdyn_invoicestatus eq null"):
            lines = self._query("msdyn_projectvendorinvoicelines",
                                f"_msdyn_vendorinvoice_value eq {inv['msdyn_projectvendorinvoiceid']}")
            if not lines:
                continue  # lines sync after the header; approve once they are here
            for ln in lines:
                lid = ln["msdyn_projectvendorinvoicelineid"]
                if self._query("msdyn_actuals", f"_msdyn_vendorinvoiceline_value eq {lid}"):
                    continue
                qty = float(ln.get("msdyn_quantity") or 1)
                amount = float(ln.get("msdyn_amount") or 0)
                price = float(ln.get("msdyn_price") or (amount / qty if qty else amount))
                link = {"msdyn_vendorinvoiceline@odata.bind": f"/msdyn_projectvendorinvoicelines({lid})"}
                name = ln.get("msdyn_name") or f"Vendor invoice line {ln['msdyn_externalinvoiceline']}"
                date = ln.get("msdyn_transactiondate") or inv.get("msdyn_invoicedate")
                cost = self._actual(report, ln, description=name, classification=CLASS_MATERIAL, ttype=TYPE_COST,
                                    quantity=qty, price=price, date=date, link=link, amount=amount)
                self._with_sales(report, ln, cost, CLASS_MATERIAL, name, qty, price, date, link)
            self._call("PATCH", f"msdyn_projectvendorinvoices({inv['msdyn_projectvendorinvoiceid']})",
                       {"msdyn_invoicestatus": VENDOR_INVOICE_APPROVED})
            report.processed += 1

    def confirm_proformas(self, report: FlowReport) -> None:
        for inv in self._query("invoices", f"msdyn_proformastatus eq {PROFORMA_CONFIRMED}"):
            iid, contract = inv["invoiceid"], inv.get("_salesorderid_value")
            if not contract or self._query("msdyn_actuals", f"_msdyn_invoice_value eq {iid}"):
                continue
            unbilled = self._query("msdyn_actuals", f"_msdyn_contract_value eq {contract} and "
                                                    f"msdyn_transactiontypecode eq {TYPE_UNBILLED} and "
                                                    "msdyn_skipsync eq false")
            link = {"msdyn_invoice@odata.bind": f"/invoices({iid})"}
            for u in unbilled:
                if self._query("msdyn_transactionconnections", f"msdyn_transaction1 eq '{u['msdyn_actualid']}' and "
                                                               f"msdyn_transaction2typecode eq {TYPE_BILLED}"):
                    continue  # billed on an earlier invoice
                line = {"salesorderdetailid": u.get("_msdyn_contractline_value"), "_salesorderid_value": contract} \
                    if u.get("_msdyn_contractline_value") else None
                args = dict(description=u.get("msdyn_description") or "Billed sales",
                            classification=u.get("msdyn_transactionclassification") or CLASS_TIME,
                            quantity=float(u.get("msdyn_quantity") or 0), price=float(u.get("msdyn_price") or 0),
                            date=inv.get("msdyn_invoicedate"), link=link, contract_line=line)
                billed = self._actual(report, u, ttype=TYPE_BILLED, amount=float(u.get("msdyn_amount") or 0), **args)
                # the reversal of unbilled sales stays in Dataverse (Skip Sync, po-maps.md §3)
                reversal = self._actual(report, u, ttype=TYPE_UNBILLED, skip_sync=True,
                                        amount=-float(u.get("msdyn_amount") or 0), **args)
                self.connect(report, u["msdyn_actualid"], TYPE_UNBILLED, billed, TYPE_BILLED)
                self.connect(report, reversal, TYPE_UNBILLED, billed, TYPE_BILLED)
            report.processed += 1


class FlowAwareService(DataverseService):
    """The Web API service plus Project Operations' check on expenses: a summary task is refused."""

    def _check_required(self, table: Table, row: dict[str, Any]) -> None:
        super()._check_required(table, row)
        task = row.get("msdyn_projecttask") if table.logical_name == "msdyn_expense" else None
        if not task:
            return
        tasks = self.schema.tables["msdyn_projecttask"]
        if self.store.find(tasks, {"msdyn_parenttask": task}) is not None:
            parent = self.store.get(tasks, task) or {}
            raise errors.DataverseError(
                "Could not resolve project task for export expense. The specified task activity number doesn't "
                f"uniquely identify the task: '{parent.get('msdyn_subject', task)}' is a summary task. Recall the "
                "expense in Finance and select a leaf task (activity), then replay.", status=400, code="0x80040265")
