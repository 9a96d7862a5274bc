"""Finance documents: posted expense lines and project vendor invoices with their lines.

They point at projects, tasks and categories by the keys the setup maps give them in Finance
(project number, task id, category name), so they resolve once the setup maps have run, or at once
when the generator also yields the counterparts.
"""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.demo.ids import pick
from sandbox.demo.plan import CATEGORIES, EXPENSE_CATEGORIES, LINES_PER_VENDOR_INVOICE, Company
from sandbox.demo.rows import DemoRow, day, fo, money
from sandbox.demo.transactions import category_of
from sandbox.demo.world import Project, World

SALES_TAX = 0.1


def expenses(w: World) -> Iterator[DemoRow]:
    for e in range(w.plan.expenses):
        pr = w.project(pick(w.seed, "expense.project", e, w.plan.projects))
        wk = w.worker(w.worker_in(pr.company, "expense.worker", e))
        ec = EXPENSE_CATEGORIES[pick(w.seed, "expense.category", e, len(EXPENSE_CATEGORIES))]
        if ec.expense_type == "Mileage":
            quantity, price = float(10 + pick(w.seed, "expense.km", e, 390)), 0.5
        else:
            quantity, price = 1.0, float(15 + pick(w.seed, "expense.amount", e, 485))
        amount = money(quantity * price * w.rate(pr.company.currency))
        yield fo("ProjExpenseExports", {
            "dataAreaId": pr.company.area, "ExpenseNumber": f"{pr.company.code[:2]}-X{e + 1:07d}",
            "ExpenseReportNumber": f"{pr.company.code[:2]}-R{e // 4 + 1:06d}", "ProjectId": pr.number,
            "ActivityNumber": w.task_id(pr.index, w.leaf_task("expense.task", e)),
            "ExpenseCategoryId": ec.id, "PersonnelNumber": wk.number,
            "TransactionDate": day(w.day_in(pr, "expense.day", e)), "Quantity": quantity, "Amount": amount,
            "CurrencyCode": pr.company.currency, "SalesTaxAmount": money(amount * SALES_TAX),
            "Description": f"{ec.name} for {pr.number}",
            "ApprovalStatus": "Posted" if pick(w.seed, "expense.status", e, 4) else "Approved"})


def _invoice(w: World, i: int) -> tuple[Project, str, list[tuple[int, float, float]]]:
    """(project, vendor invoice id, lines as (category, quantity, unit price)) of vendor invoice ``i``."""
    pr = w.project(pick(w.seed, "vendorinvoice.project", i, w.plan.projects))
    lines = [(category_of(w, "Material", "vendorinvoice.category", i * 8 + n),
              float(1 + pick(w.seed, "vendorinvoice.quantity", i * 8 + n, 10)),
              money((25 + 5 * pick(w.seed, "vendorinvoice.price", i * 8 + n, 200)) * w.rate(pr.company.currency)))
             for n in range(LINES_PER_VENDOR_INVOICE)]
    return pr, _invoice_id(pr.company, i), lines


def _invoice_id(company: Company, i: int) -> str:
    return f"{company.code[:2]}-VI{i + 1:06d}"


def vendor_invoices(w: World) -> Iterator[DemoRow]:
    for i in range(w.plan.vendor_invoices):
        pr, invoice_id, lines = _invoice(w, i)
        yield fo("ProjVendInvoiceHeaderExports", {
            "dataAreaId": pr.company.area, "VendorInvoiceId": invoice_id, "InvoiceNumber": f"INV-{i + 1:07d}",
            "VendorAccountNumber": w.finance_vendor_of(pr.company, i),
            "InvoiceDate": day(w.day_in(pr, "vendorinvoice.day", i)), "CurrencyCode": pr.company.currency,
            "InvoiceAmount": money(sum(q * p for _, q, p in lines)),
            "Description": f"Subcontracted material for {pr.number}", "HoldPayment": "No",
            "HasProjectLine": "Yes"})
    for i in range(w.plan.vendor_invoices):
        pr, invoice_id, lines = _invoice(w, i)
        for n, (cat, quantity, price) in enumerate(lines):
            yield fo("ProjVendInvoiceLineExports", {
                "dataAreaId": pr.company.area, "ExternalInvoiceLine": f"{invoice_id}-{n + 1}",
                "VendorInvoiceId": invoice_id, "LineNumber": n + 1, "ProjectId": pr.number,
                "ProjectDataAreaId": pr.company.area,
                "TaskId": w.task_id(pr.index, w.leaf_task("vendorinvoice.task", i * 8 + n)),
                "TransactionCategory": CATEGORIES[cat].name, "Description": f"{CATEGORIES[cat].name} for {pr.number}",
                "Quantity": quantity, "UnitPrice": price, "LineAmount": money(quantity * price),
                "CurrencyCode": pr.company.currency})
