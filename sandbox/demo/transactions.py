"""Estimates and actuals (Dataverse masters): resource assignments, estimate lines, cost and
unbilled sales actuals of time, expense and material, and the transaction connections between them.

The actual ids of transaction ``t`` are a pure function of (seed, t): the connections pass recomputes
them, so it keeps none of the actuals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from functools import lru_cache
from typing import NamedTuple

from sandbox.demo import options as opt
from sandbox.demo.ids import guid, pick
from sandbox.demo.plan import (
    CATEGORIES,
    ESTIMATE_LINES_PER_PROJECT,
    ROLES,
    SALES_MARKUP,
    TASKS_PER_PROJECT,
)
from sandbox.demo.rows import DemoRow, Row, day, dv, money, stamp
from sandbox.demo.setup import CLASS_OF_KIND
from sandbox.demo.world import Project, World

_BY_KIND = {kind: [i for i, c in enumerate(CATEGORIES) if c.kind == kind] for kind in ("Time", "Expense", "Material")}


def category_of(w: World, kind: str, salt: str, index: int) -> int:
    """A seeded transaction category (index into CATEGORIES) of ``kind``."""
    choices = _BY_KIND[kind]
    return choices[pick(w.seed, salt, index, len(choices))]


def estimates(w: World) -> Iterator[DemoRow]:
    for p in range(w.plan.projects):
        pr = w.project(p)
        for k in range(1, TASKS_PER_PROJECT):
            wk = w.worker(w.worker_in(pr.company, "assignment.worker", p * 16 + k))
            hours = float(8 * (2 + pick(w.seed, "assignment.hours", p * 16 + k, 30)))
            cost = ROLES[wk.role][1] * w.rate(pr.company.currency)
            yield dv("msdyn_resourceassignments", {
                "msdyn_resourceassignmentid": guid(w.seed, "msdyn_resourceassignment", f"{pr.number}/{k}"),
                "msdyn_name": f"{wk.full_name} on {pr.number} {w.wbs(k)}", "_msdyn_projectid_value": pr.guid,
                "_msdyn_taskid_value": w.task_id(p, k), "_msdyn_bookableresourceid_value": wk.resource,
                "_msdyn_company_value": w.company_id(pr.company),
                "msdyn_plannedwork": hours, "msdyn_plannedcost": money(hours * cost),
                "msdyn_plannedsales": money(hours * cost * SALES_MARKUP),
                "msdyn_start": stamp(pr.start), "msdyn_finish": stamp(pr.finish, 17),
                "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
                "exchangerate": w.rate(pr.company.currency)})
    for p in range(w.plan.projects):
        pr = w.project(p)
        for e in range(ESTIMATE_LINES_PER_PROJECT):
            n = p * 8 + e
            kind = "Expense" if e < ESTIMATE_LINES_PER_PROJECT // 2 else "Material"
            cat = category_of(w, kind, "estimate.category", n)
            quantity = float(1 + pick(w.seed, "estimate.quantity", n, 20))
            price = float(20 + 10 * pick(w.seed, "estimate.price", n, 50))
            yield dv("msdyn_estimatelines", {
                "msdyn_estimatelineid": guid(w.seed, "msdyn_estimateline", f"{pr.number}/{e}"),
                "msdyn_description": f"{CATEGORIES[cat].name} estimate", "_msdyn_project_value": pr.guid,
                "_msdyn_task_value": w.task_id(p, w.leaf_task("estimate.task", n)),
                "_msdyn_transactioncategory_value": w.category_id(cat),
                "msdyn_transactionclassification": CLASS_OF_KIND[kind], "msdyn_transactiontypecode": opt.TYPE_COST,
                "_msdyn_company_value": w.company_id(pr.company),
                "msdyn_quantity": quantity, "msdyn_price": price, "msdyn_amount": money(quantity * price),
                "msdyn_documentdate": day(pr.start), "msdyn_startdatetime": stamp(pr.start),
                "msdyn_billingtype": opt.BILLING_CHARGEABLE,
                "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
                "exchangerate": w.rate(pr.company.currency)})


class Transaction(NamedTuple):
    project: Project
    task: str
    kind: str
    category: int
    resource: str | None
    role: int | None
    unit: str
    on: date
    hours: int  # start hour of the work (time) or of the receipt
    quantity: float
    cost_price: float
    sales_price: float


def transaction(w: World, rng: random.Random) -> Transaction:
    """The next transaction of the stream ``rng`` (nobody points at actuals by their attributes, so a
    sequential stream is enough here, and far cheaper than a hash per choice)."""
    def below(n: int) -> int:
        return int(rng.random() * n)

    pr = w.project(below(w.plan.projects))
    task = w.task_id(pr.index, 1 + below(TASKS_PER_PROJECT - 1))
    on = pr.start + timedelta(days=below(max(1, (pr.finish - pr.start).days)))
    r = below(100)
    rate = w.rate(pr.company.currency)
    if r < 80:
        wk = w.worker(w.worker_in(pr.company, "txn.worker", below(1 << 30)))
        cost = ROLES[wk.role][1] * rate
        overtime = below(10) == 0
        return Transaction(pr, task, "Time", _BY_KIND["Time"][1 if overtime else 0], wk.resource, wk.role, "Hour",
                           on, 8, float(1 + below(8)), cost, cost * SALES_MARKUP)
    if r < 92:
        wk = w.worker(w.worker_in(pr.company, "txn.worker", below(1 << 30)))
        cost = float(15 + below(485)) * rate
        expense = _BY_KIND["Expense"]
        return Transaction(pr, task, "Expense", expense[below(len(expense))], wk.resource, None, "Each", on, 12,
                           1.0, cost, cost)
    cost = float(50 + 25 * below(80)) * rate
    material = _BY_KIND["Material"]
    return Transaction(pr, task, "Material", material[below(len(material))], None, None, "Each", on, 10,
                       float(1 + below(10)), cost, cost * 1.15)


def actual_ids(w: World, t: int) -> tuple[str, str]:
    """(cost actual, unbilled sales actual) of transaction ``t``."""
    return (guid(w.seed, "msdyn_actual", f"{t}/cost"), guid(w.seed, "msdyn_actual", f"{t}/sales"))


@lru_cache(maxsize=1 << 14)
def _description(category: int, project_number: str) -> str:
    return f"{CATEGORIES[category].name} on {project_number}"


def _actual(w: World, tx: Transaction, actual_id: str, sales: bool) -> Row:
    pr = tx.project
    price = tx.sales_price if sales else tx.cost_price
    currency = w.currency_id(pr.company.currency)
    row: Row = {
        "msdyn_actualid": actual_id,
        "msdyn_description": _description(tx.category, pr.number),
        "_msdyn_project_value": pr.guid, "_msdyn_task_value": tx.task,
        "_msdyn_transactioncategory_value": w.category_id(tx.category), "_msdyn_unit_value": w.unit_id(tx.unit),
        "_msdyn_accountingcurrency_value": currency,
        "msdyn_transactionclassification": CLASS_OF_KIND[tx.kind],
        "msdyn_transactiontypecode": opt.TYPE_UNBILLED_SALES if sales else opt.TYPE_COST,
        "msdyn_billingtype": opt.BILLING_CHARGEABLE,
        "msdyn_quantity": tx.quantity, "msdyn_price": money(price), "msdyn_amount": money(price * tx.quantity),
        "msdyn_documentdate": day(tx.on), "msdyn_accountingdate": day(tx.on),
        "msdyn_startdatetime": stamp(tx.on, tx.hours),
        "_msdyn_company_value": w.company_id(pr.company), "msdyn_skipsync": False, "_transactioncurrencyid_value": currency,
        "exchangerate": w.rate(pr.company.currency),
    }
    if tx.kind == "Time":
        row["msdyn_enddatetime"] = stamp(tx.on, min(23, tx.hours + int(tx.quantity)))
    if tx.resource:
        row["_msdyn_bookableresource_value"] = tx.resource
    if tx.role is not None:
        row["_msdyn_resourcecategory_value"] = w.role_id(tx.role)
    if sales:
        row["_msdyn_contract_value"] = pr.contract_guid
        row["_msdyn_contractline_value"] = pr.tm_line_guid
        row["_msdyn_customer_value"] = pr.customer_guid
    return row


def actuals(w: World) -> Iterator[DemoRow]:
    rng = random.Random(f"{w.seed}/actuals")
    for t in range(w.plan.transactions):
        tx = transaction(w, rng)
        cost_id, sales_id = actual_ids(w, t)
        yield dv("msdyn_actuals", _actual(w, tx, cost_id, sales=False))
        yield dv("msdyn_actuals", _actual(w, tx, sales_id, sales=True))


def connections(w: World) -> Iterator[DemoRow]:
    for t in range(w.plan.transactions):
        cost_id, sales_id = actual_ids(w, t)
        yield dv("msdyn_transactionconnections", {
            "msdyn_transactionconnectionid": guid(w.seed, "msdyn_transactionconnection", str(t)),
            "msdyn_name": f"Transaction {t + 1}",
            "msdyn_transaction1": cost_id, "msdyn_transaction1typecode": opt.CONNECTION_RECORD_ACTUAL,
            "msdyn_transaction1role": opt.ROLE_COST,
            "msdyn_transaction2": sales_id, "msdyn_transaction2typecode": opt.CONNECTION_RECORD_ACTUAL,
            "msdyn_transaction2role": opt.ROLE_UNBILLED_SALES})
