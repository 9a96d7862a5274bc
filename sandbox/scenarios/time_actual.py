"""Time actual lifecycle (po-maps.md §3): cost and unbilled-sales actuals of approved time in Dataverse
-> Finance staging -> Import from staging (integration journal) -> posting (voucher, accounting-currency
amount through the exchange rate) -> written back to the Dataverse actuals."""

from __future__ import annotations

from typing import Any

from sandbox.dataverse.flows import CLASS_TIME, TYPE_COST, TYPE_UNBILLED
from sandbox.scenarios.actuals import (
    Expected,
    check_connection_in_finance,
    check_staged,
    connect,
    new_actual,
    post_and_check_write_back,
)
from sandbox.scenarios.lookup import (
    category_id,
    currency_id,
    other_currency,
    project_with_contract_line,
    tasks,
)
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks


async def run(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 0)
    leaves, _ = await tasks(p, pr.id)
    currency = other_currency(pr.accounting_currency)  # a real exchange rate, not 1
    cur, cat, date = await currency_id(p, currency), await category_id(p, "Standard time"), pr.start
    common: dict[str, Any] = dict(classification=CLASS_TIME, quantity=8.0, currency_id=cur, category_id=cat,
                  task_id=leaves[0]["msdyn_projecttaskid"] if leaves else None, date=date)
    cost = await new_actual(p, pr, ttype=TYPE_COST, price=100.0, description="Scenario time: cost", **common)
    sales = await new_actual(p, pr, ttype=TYPE_UNBILLED, price=160.0, description="Scenario time: unbilled sales",
                             on_contract=True, **common)
    await connect(p, cost, TYPE_COST, sales, TYPE_UNBILLED)
    await p.wait()

    actuals = [Expected(cost, "cost", 800.0, currency), Expected(sales, "unbilled sales", 1280.0, currency)]
    if not await check_staged(p, c, pr, actuals, {"cost": "Cost", "unbilled sales": "UnbilledSales"}):
        return
    await check_connection_in_finance(p, c, cost, sales)
    await post_and_check_write_back(p, c, pr, actuals, date)
    lines = {r["ActualId"]: r for r in await p.finance.query(
        "ProjOpsIntegrationJournalLines", "ActualId eq {} or ActualId eq {}", cost, sales)}
    c.equal("integration journal: one posted line per actual, with the time category",
            sorted((r["TransType"], r["CategoryId"], r["LineStatus"]) for r in lines.values()),
            [("Cost", "Standard time", "Posted"), ("UnbilledSales", "Standard time", "Posted")])
    c.check("cost and unbilled sales are on the same journal",
            len({r["JournalId"] for r in lines.values()}) == 1, str({r["JournalId"] for r in lines.values()}))
