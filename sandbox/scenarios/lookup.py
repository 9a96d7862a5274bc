"""Reading the demo data the scenarios start from, over HTTP: a project with a contract line, its
tasks, companies, currencies, categories, and the exchange rate Finance will use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.scenarios.pipeline import Pipeline, ScenarioStepFailed


@dataclass
class Project:
    id: str
    number: str
    company_id: str
    company: str  # legal entity code, e.g. USPM
    area: str  # Finance dataAreaId, e.g. uspm
    accounting_currency: str
    contract_id: str
    contract_line_id: str
    start: str  # YYYY-MM-DD
    row: dict[str, Any]


async def project_with_contract_line(p: Pipeline, index: int = 0) -> Project:
    """The ``index``-th project (by number) that has a contract line."""
    lines = {ln["_msdyn_project_value"]: ln for ln in await p.dataverse.query("salesorderdetails")
             if ln.get("_msdyn_project_value")}
    projects = sorted((r for r in await p.dataverse.query("msdyn_projects") if r["msdyn_projectid"] in lines),
                      key=lambda r: r["msdyn_projectnumber"])
    if not projects:
        raise ScenarioStepFailed("the demo data has no project with a contract line")
    row = projects[index % len(projects)]
    line = lines[row["msdyn_projectid"]]
    company = await p.dataverse.get("cdm_companies", row["_msdyn_company_value"])
    code = company["cdm_companycode"]
    entity = await p.finance.find("LegalEntities", {"LegalEntityId": code})
    return Project(row["msdyn_projectid"], row["msdyn_projectnumber"], row["_msdyn_company_value"], code,
                   code.lower(), str((entity or {}).get("AccountingCurrency")), line["_salesorderid_value"],
                   line["salesorderdetailid"], str(row.get("msdyn_scheduledstart") or "")[:10], row)


async def tasks(p: Pipeline, project_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(leaf tasks, summary tasks) of a project; a summary task is some task's parent."""
    rows = await p.dataverse.query("msdyn_projecttasks", f"_msdyn_project_value eq {project_id}")
    parents = {r.get("_msdyn_parenttask_value") for r in rows}
    return ([r for r in rows if r["msdyn_projecttaskid"] not in parents],
            [r for r in rows if r["msdyn_projecttaskid"] in parents])


async def one(p: Pipeline, entity_set: str, column: str, value: str) -> dict[str, Any]:
    rows = await p.dataverse.query(entity_set, f"{column} eq '{value}'")
    if not rows:
        raise ScenarioStepFailed(f"no {entity_set} row with {column} = {value!r} in Dataverse")
    return rows[0]


async def currency_id(p: Pipeline, iso: str) -> str:
    return str((await one(p, "transactioncurrencies", "isocurrencycode", iso))["transactioncurrencyid"])


async def category_id(p: Pipeline, name: str) -> str:
    return str((await one(p, "msdyn_transactioncategories", "msdyn_name", name))["msdyn_transactioncategoryid"])


def other_currency(accounting: str) -> str:
    """A transaction currency unlike the accounting currency, so a real exchange rate applies."""
    return "EUR" if accounting.upper() == "USD" else "USD"


async def finance_rate(p: Pipeline, from_cur: str, to_cur: str, on: str) -> float | None:
    """The rate Finance's exchange-rate table gives on ``on`` (the direct pair, else the inverse one)."""
    if from_cur.upper() == to_cur.upper():
        return 1.0
    for a, b, invert in ((from_cur, to_cur, False), (to_cur, from_cur, True)):
        rows = [r for r in await p.finance.query("ExchangeRates", "FromCurrency eq {} and ToCurrency eq {}", a, b)
                if str(r["StartDate"])[:10] <= on and (not r.get("EndDate") or str(r["EndDate"])[:10] >= on)]
        if rows:
            rate = float(max(rows, key=lambda r: str(r["StartDate"]))["Rate"])
            return 1 / rate if invert else rate
    return None
