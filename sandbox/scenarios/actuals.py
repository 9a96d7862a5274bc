"""Actuals as the scenarios create and follow them: created in Dataverse, staged in Finance, imported
and posted there, and the accounting result back on the Dataverse actual."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sandbox.dataverse.flows import BILLING_CHARGEABLE, ROLE_OF_TYPE
from sandbox.scenarios.lookup import Project, finance_rate
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks

STAGING = "ProjCDSActualsImports"
CONNECTIONS = "ProjCDSTransactionRelationshipImports"


@dataclass
class Expected:
    """What Finance should write back for one actual."""

    id: str
    label: str  # "cost", "unbilled sales", ...
    amount: float
    currency: str


async def new_actual(p: Pipeline, pr: Project, *, classification: int, ttype: int, quantity: float, price: float,
                     currency_id: str, category_id: str, task_id: str | None, date: str, description: str,
                     on_contract: bool = False) -> str:
    """An actual created in Dataverse as Project Operations would (time entry approval, ...)."""
    actual_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "msdyn_actualid": actual_id, "msdyn_description": description,
        "msdyn_transactionclassification": classification, "msdyn_transactiontypecode": ttype,
        "msdyn_billingtype": BILLING_CHARGEABLE, "msdyn_quantity": quantity, "msdyn_price": price,
        "msdyn_amount": round(quantity * price, 2), "msdyn_documentdate": date, "msdyn_accountingdate": date,
        "msdyn_skipsync": False,
        "msdyn_project@odata.bind": f"/msdyn_projects({pr.id})",
        "msdyn_company@odata.bind": f"/cdm_companies({pr.company_id})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency_id})",
        "msdyn_transactioncategory@odata.bind": f"/msdyn_transactioncategories({category_id})"}
    if task_id:
        body["msdyn_task@odata.bind"] = f"/msdyn_projecttasks({task_id})"
    if on_contract:
        body["msdyn_contract@odata.bind"] = f"/salesorders({pr.contract_id})"
        body["msdyn_contractline@odata.bind"] = f"/salesorderdetails({pr.contract_line_id})"
    await p.dataverse.create("msdyn_actuals", body)
    return actual_id


async def connect(p: Pipeline, first: str, first_type: int, second: str, second_type: int) -> str:
    connection_id = str(uuid.uuid4())
    await p.dataverse.create("msdyn_transactionconnections", {
        "msdyn_transactionconnectionid": connection_id, "msdyn_name": "scenario connection",
        "msdyn_transaction1": first, "msdyn_transaction1typecode": first_type,
        "msdyn_transaction1role": ROLE_OF_TYPE[first_type],
        "msdyn_transaction2": second, "msdyn_transaction2typecode": second_type,
        "msdyn_transaction2role": ROLE_OF_TYPE[second_type]})
    return connection_id


async def staged(p: Pipeline, area: str, actual_id: str) -> dict[str, Any] | None:
    return await p.finance.find(STAGING, {"dataAreaId": area, "ActualId": actual_id})


async def check_connection_in_finance(p: Pipeline, c: Checks, first: str, second: str) -> None:
    rows = await p.finance.query(CONNECTIONS, "Transaction1Id eq {} and Transaction2Id eq {}", first, second)
    c.check("transaction connection in Finance links the two actuals", bool(rows),
            f"{len(rows)} row(s) {first} -> {second}")


async def check_staged(p: Pipeline, c: Checks, pr: Project, actuals: list[Expected], trans_types: dict[str, str]) -> bool:
    ok = True
    for a in actuals:
        row = await staged(p, pr.area, a.id)
        if not c.check(f"{a.label} actual staged in Finance (ProjCDSActualsImport)", row is not None, a.id):
            ok = False
            continue
        assert row is not None
        ok &= c.equal(f"{a.label} staging row: project, type, amount, currency",
                      (row["ProjectId"], row["TransType"], float(row["Amount"]), row["TransactionCurrencyId"]),
                      (pr.number, trans_types[a.label], a.amount, a.currency))
    return ok


async def post_and_check_write_back(p: Pipeline, c: Checks, pr: Project, actuals: list[Expected], date: str,
                                    voucher_prefix: str = "PRJV-") -> dict[str, dict[str, Any]]:
    """Import from staging, post the integration journal, and check the result in both systems:
    voucher, accounting-currency amount through the rate of the accounting date, status; then the same
    values on the Dataverse actuals (the write-back through the actuals map)."""
    for flow in ("import-actuals", "post-journals"):
        await p.finance.run_flow(flow)
    await p.wait()
    posted: dict[str, dict[str, Any]] = {}
    for a in actuals:
        row = await staged(p, pr.area, a.id) or {}
        posted[a.id] = row
        rate = await finance_rate(p, a.currency, pr.accounting_currency, date)
        expected_mst = round(a.amount * rate, 2) if rate is not None else None
        c.equal(f"{a.label}: Finance staging row posted (status, journalized)",
                (row.get("Status"), row.get("IsJournalized")), ("Posted", "Yes"))
        c.check(f"{a.label}: Finance voucher", str(row.get("Voucher") or "").startswith(voucher_prefix),
                str(row.get("Voucher")))
        c.equal(f"{a.label}: Finance exchange rate {a.currency}->{pr.accounting_currency} on {date}",
                float(row.get("ExchangeRate") or 0), float(rate or 0))
        c.equal(f"{a.label}: Finance accounting-currency amount", float(row.get("AmountMST") or 0),
                float(expected_mst or 0))
        dv = await p.dataverse.get("msdyn_actuals", a.id)
        c.equal(f"{a.label}: Dataverse actual has the voucher, amount (accounting currency) and rate",
                (dv.get("msdyn_voucher"), float(dv.get("msdyn_amountmst") or 0),
                 float(dv.get("msdyn_exchangeratetoaccountingcurrency") or 0)),
                (row.get("Voucher"), float(expected_mst or 0), float(rate or 0)))
    return posted
