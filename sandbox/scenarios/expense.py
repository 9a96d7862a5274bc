"""Expense lifecycle (po-maps.md §5): an expense posted in Finance (expense integration account) ->
Dataverse expense -> approved -> Expense actuals and their connection -> staged, imported and posted
in Finance, which clears the integration account -> accounting result back on the actuals."""

from __future__ import annotations

import uuid

from sandbox.dataverse.flows import EXPENSE_POSTED, TYPE_COST, TYPE_UNBILLED
from sandbox.scenarios.actuals import (
    Expected,
    check_connection_in_finance,
    check_staged,
    post_and_check_write_back,
)
from sandbox.scenarios.lookup import finance_rate, other_currency, project_with_contract_line, tasks
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks


async def run(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 1)
    leaves, _ = await tasks(p, pr.id)
    category = (await p.finance.query("ProjExpenseCategoryExports", "dataAreaId eq {}", pr.area))[0]
    currency, date, amount = other_currency(pr.accounting_currency), pr.start, 240.0
    number = f"SCN-X{uuid.uuid4().hex[:6].upper()}"
    key = {"dataAreaId": pr.area, "ExpenseNumber": number}
    await p.finance.create("ProjExpenseExports", {
        **key, "ExpenseReportNumber": f"SCN-R{number[5:]}", "ProjectId": pr.number,
        "ActivityNumber": leaves[0]["msdyn_projecttaskid"], "ExpenseCategoryId": category["ExpenseCategoryId"],
        "TransactionDate": f"{date}T00:00:00Z", "Quantity": 2, "Amount": amount, "CurrencyCode": currency,
        "Description": "Scenario expense", "ApprovalStatus": "Approved"})
    await p.finance.run_flow("post-expenses")
    posted = await p.finance.find("ProjExpenseExports", key) or {}
    rate = await finance_rate(p, currency, pr.accounting_currency, date) or 0.0
    c.equal("Finance: expense posted with an expense voucher", (posted.get("ApprovalStatus"),
            str(posted.get("Voucher"))[:5]), ("Posted", "EXPV-"))
    await p.wait()

    rows = await p.dataverse.query("msdyn_expenses", f"msdyn_externalexpenseid eq '{number}'")
    if not c.check("Dataverse: the expense arrived", len(rows) == 1, number):
        return
    exp = rows[0]
    c.equal("Dataverse expense: status posted, amount, project",
            (exp.get("msdyn_expensestatus"), float(exp.get("msdyn_amount") or 0), exp.get("_msdyn_project_value")),
            (EXPENSE_POSTED, amount, pr.id))

    await p.dataverse.run_flow("approve-expenses")  # Project Operations' automatic approval
    await p.wait()
    actuals = await p.dataverse.query("msdyn_actuals", f"_msdyn_expense_value eq {exp['msdyn_expenseid']}")
    by_type = {a["msdyn_transactiontypecode"]: a for a in actuals}
    if not c.check("Dataverse: approval created a cost and an unbilled-sales actual",
                   set(by_type) == {TYPE_COST, TYPE_UNBILLED}, str(sorted(by_type))):
        return
    cost, sales = by_type[TYPE_COST]["msdyn_actualid"], by_type[TYPE_UNBILLED]["msdyn_actualid"]
    connections = await p.dataverse.query("msdyn_transactionconnections", f"msdyn_transaction1 eq '{cost}'")
    c.check("Dataverse: the actuals are connected", any(x["msdyn_transaction2"] == sales for x in connections))
    expected = [Expected(cost, "expense cost", amount, currency),
                Expected(sales, "expense unbilled sales", float(by_type[TYPE_UNBILLED]["msdyn_amount"]), currency)]
    if not await check_staged(p, c, pr, expected, {"expense cost": "Cost", "expense unbilled sales": "UnbilledSales"}):
        return
    await check_connection_in_finance(p, c, cost, sales)
    await post_and_check_write_back(p, c, pr, expected, date)
    entries = await p.finance.query("ProjOpsIntegrationAccountEntries",
                                    "Account eq 'ExpenseIntegration' and (SourceDocument eq {} or SourceDocument eq {})",
                                    number, cost)
    c.equal("Finance: the expense integration account is debited at posting and cleared by the journal",
            (len(entries), round(sum(float(e["AmountMST"]) for e in entries), 2)), (2, 0.0))
    c.equal("Finance: the account was debited with the amount in accounting currency",
            max((float(e["AmountMST"]) for e in entries), default=0.0), round(amount * rate, 2))
