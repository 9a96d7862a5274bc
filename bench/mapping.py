"""``dualsync bench mapping``: rows/s of the compiled engine against hand-written mapping functions.

The baselines are what a developer would write by hand for the Projects V2 and actuals maps (towards
Finance): the same checks (company present, required values, value maps, typed conversions) and the
same target rows — the benchmark first checks that both produce identical rows for every input.
Both run side by side in one process, interleaved, best of several rounds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.catalog import load_catalog
from shared.mapping import compile_catalog

Row = dict[str, Any]
GOAL_VS_HANDWRITTEN = 0.5

_Q2 = Decimal("0.01")
_STAGES = {0: "InProcess", 1: "Completed"}
_CLASSES = {192350000: "Time", 192350001: "Expense", 192350002: "Material", 192350003: "Milestone",
            192350004: "Fee", 690970000: "Commission", 690970001: "Additional", 690970002: "Tax"}
_TYPES = {192350000: "Cost", 192350004: "ProjectContract", 192350005: "UnbilledSales",
          192350006: "BilledSales", 192350007: "ResourcingUnitCost", 192350008: "InterOrganizationalSales"}
_BILLING = {192350000: "NonChargeable", 192350001: "Chargeable", 192350002: "Complimentary",
            192350003: "NotAvailable"}
_ADJUST = {192350000: "InProcess", 192350001: "Adjusted", 192350002: "Unadjustable"}


def _date(v: Any) -> str | None:
    return None if v is None else date.fromisoformat(v).isoformat() + "T00:00:00Z"


def _money(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise TypeError("bool")
    return float(Decimal(str(v)).quantize(_Q2, rounding=ROUND_HALF_UP))


def _datetime(v: Any) -> str | None:
    if v is None:
        return None
    return datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(row: Row, nav: str, key: str) -> Any:
    r = row.get(nav)
    return None if r is None else r[key]


def _enum(table: dict[int, str], v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool) or v not in table:
        raise ValueError(v)
    return table[v]


def _company(row: Row) -> str:
    c = row.get("msdyn_company")
    if not isinstance(c, dict) or not isinstance(c.get("cdm_companycode"), str):
        raise ValueError("company")
    return c["cdm_companycode"].lower()


def handwritten_projects(row: Row) -> Row:
    if row.get("msdyn_projectnumber") is None or row.get("msdyn_subject") is None:
        raise ValueError("required")
    return {
        "dataAreaId": _company(row),
        "ProjectID": row["msdyn_projectnumber"],
        "ProjectName": row["msdyn_subject"],
        "Description": row.get("msdyn_description"),
        "SourceDataID": row.get("msdyn_projectid"),
        "CustomerAccount": _ref(row, "msdyn_customer", "accountnumber"),
        "ProjectedStartDate": _datetime(row.get("msdyn_scheduledstart")),
        "ProjectedEndDate": _datetime(row.get("msdyn_finish")),
        "ProjectStatus": _enum(_STAGES, row.get("statecode")),
        "ProjectType": "TimeMaterial",
    }


def handwritten_actuals(row: Row) -> Row:
    for required in ("msdyn_actualid", "msdyn_project", "msdyn_documentdate", "msdyn_accountingdate",
                     "msdyn_quantity", "msdyn_amount", "transactioncurrencyid",
                     "msdyn_transactionclassification", "msdyn_transactiontypecode"):
        if row.get(required) is None:
            raise ValueError(required)
    return {
        "dataAreaId": _company(row),
        "ActualId": row["msdyn_actualid"],
        "ProjectId": row["msdyn_project"]["msdyn_projectnumber"],
        "TaskId": _ref(row, "msdyn_task", "msdyn_projecttaskid"),
        "ContractId": _ref(row, "msdyn_contract", "ordernumber"),
        "ContractLine": _ref(row, "msdyn_contractline", "msdyn_lineid"),
        "TransactionCategory": _ref(row, "msdyn_transactioncategory", "msdyn_name"),
        "ResourceId": _ref(row, "msdyn_bookableresource", "bookableresourceid"),
        "Description": row.get("msdyn_description"),
        "ExternalDescription": row.get("msdyn_externaldescription"),
        "DocumentDate": _date(row["msdyn_documentdate"]),
        "AccountingDate": _date(row["msdyn_accountingdate"]),
        "Quantity": _money(row["msdyn_quantity"]),
        "UnitPrice": _money(row.get("msdyn_price")),
        "Amount": _money(row["msdyn_amount"]),
        "TransactionCurrencyId": row["transactioncurrencyid"]["isocurrencycode"],
        "TransactionClassification": _enum(_CLASSES, row["msdyn_transactionclassification"]),
        "TransType": _enum(_TYPES, row["msdyn_transactiontypecode"]),
        "BillingType": _enum(_BILLING, row.get("msdyn_billingtype")),
        "AdjustmentStatus": _enum(_ADJUST, row.get("msdyn_adjustmentstatus")),
    }


def project_rows(n: int, rng: random.Random) -> list[Row]:
    return [
        {
            "msdyn_projectid": f"00000000-0000-4000-8000-{i:012d}",
            "msdyn_company": {"cdm_companycode": rng.choice(["USPM", "GBPM", "DEPM"])},
            "msdyn_projectnumber": f"PRJ-{i:06d}",
            "msdyn_subject": f"Project {i}",
            "msdyn_description": None if i % 3 else f"Description {i}",
            "msdyn_customer": {"accountnumber": f"C-{i % 500:04d}"},
            "msdyn_scheduledstart": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
            "msdyn_finish": None,
            "statecode": i % 2,
            "versionnumber": i,
        }
        for i in range(n)
    ]


def actual_rows(n: int, rng: random.Random) -> list[Row]:
    rows = []
    for i in range(n):
        qty = rng.randint(1, 4000) / 100
        price = rng.randint(1000, 30000) / 100
        rows.append({
            "msdyn_actualid": f"10000000-0000-4000-8000-{i:012d}",
            "msdyn_company": {"cdm_companycode": "USPM"},
            "msdyn_project": {"msdyn_projectnumber": f"PRJ-{i % 1000:06d}"},
            "msdyn_task": {"msdyn_projecttaskid": f"20000000-0000-4000-8000-{i % 20:012d}"} if i % 4 else None,
            "msdyn_contract": {"ordernumber": f"CON-{i % 300:05d}"},
            "msdyn_contractline": {"msdyn_lineid": f"L-{i % 5}"},
            "msdyn_transactioncategory": {"msdyn_name": "Consulting"},
            "msdyn_bookableresource": {"bookableresourceid": f"40000000-0000-4000-8000-{i % 50:012d}"},
            "msdyn_description": f"Actual {i}",
            "msdyn_externaldescription": None,
            "transactioncurrencyid": {"isocurrencycode": "USD"},
            "msdyn_documentdate": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "msdyn_accountingdate": f"2026-{1 + i % 12:02d}-28",
            "msdyn_quantity": qty,
            "msdyn_price": price,
            "msdyn_amount": round(qty * price, 2),
            "msdyn_transactionclassification": 192350000,
            "msdyn_transactiontypecode": rng.choice([192350000, 192350005]),
            "msdyn_billingtype": 192350001,
            "msdyn_adjustmentstatus": None,
            "versionnumber": i,
        })
    return rows


def _rate(fn: Callable[[Row], Row], rows: list[Row]) -> float:
    started = time.perf_counter()
    for row in rows:
        fn(row)
    return len(rows) / (time.perf_counter() - started)


def run(quick: bool = False) -> dict[str, Any]:
    n = 20_000 if quick else 200_000
    rounds = 3 if quick else 5
    rng = random.Random(7)
    compiled = compile_catalog(load_catalog())
    cases = {
        "projects": (compiled["projects"].to_finance, handwritten_projects, project_rows(n, rng)),
        "actuals": (compiled["actuals"].to_finance, handwritten_actuals, actual_rows(n, rng)),
    }
    figures: dict[str, Any] = {"rows": n, "rounds": rounds}
    ratios: dict[str, float] = {}
    for name, (engine, hand, rows) in cases.items():
        mismatch = next((r for r in rows if engine(r) != hand(r)), None)
        if mismatch is not None:
            raise AssertionError(f"{name}: engine and hand-written rows differ for {mismatch}")
        best_engine = best_hand = 0.0
        for _ in range(rounds):  # interleaved, so both see the same machine state
            best_engine = max(best_engine, _rate(engine, rows))
            best_hand = max(best_hand, _rate(hand, rows))
        figures[f"{name}_engine_rows_per_s"] = round(best_engine)
        figures[f"{name}_handwritten_rows_per_s"] = round(best_hand)
        ratios[f"{name}_vs_handwritten"] = round(best_engine / best_hand, 3)
    ratios["vs_handwritten"] = min(ratios["projects_vs_handwritten"], ratios["actuals_vs_handwritten"])
    return {
        "bench": "mapping",
        "figures": figures,
        "ratios": ratios,
        "goals": {"vs_handwritten": GOAL_VS_HANDWRITTEN},
        "baseline": "hand-written Python functions building the same Finance rows",
    }
