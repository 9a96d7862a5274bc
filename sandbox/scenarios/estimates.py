"""Estimates (po-maps.md §3): hour, expense and material estimates are made in Dataverse only and land
in Finance's estimate staging tables, from which Finance builds its forecasts. Created, changed and
deleted in Dataverse; each change reaches Finance with amounts, currency and exchange rate, and Finance
keeps its hour, expense and item forecasts in step with the estimates."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.dataverse.flows import CLASS_EXPENSE, CLASS_MATERIAL, TYPE_COST
from sandbox.scenarios.lookup import category_id, currency_id, project_with_contract_line, tasks
from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks

# Finance's forecasts built from the estimate staging tables (po-maps.md §3)
FORECASTS = {"expense": "ProjExpenseForecasts", "material": "ProjItemForecasts"}


async def run(p: Pipeline, c: Checks) -> None:
    pr = await project_with_contract_line(p, 1)
    leaves, _ = await tasks(p, pr.id)
    task = leaves[0]["msdyn_projecttaskid"]
    cur = await currency_id(p, pr.accounting_currency)
    currency = await p.dataverse.get("transactioncurrencies", cur)
    resource = (await p.dataverse.query("msdyn_resourceassignments", f"_msdyn_projectid_value eq {pr.id}"))[0]
    hours = str(uuid.uuid4())
    await p.dataverse.create("msdyn_resourceassignments", {
        "msdyn_resourceassignmentid": hours, "msdyn_name": "Scenario hour estimate",
        "msdyn_projectid@odata.bind": f"/msdyn_projects({pr.id})", "msdyn_taskid@odata.bind": f"/msdyn_projecttasks({task})",
        **({"msdyn_bookableresourceid@odata.bind": f"/bookableresources({resource['_msdyn_bookableresourceid_value']})"}
           if resource.get("_msdyn_bookableresourceid_value") else {}),
        "msdyn_company@odata.bind": f"/cdm_companies({pr.company_id})", "msdyn_plannedwork": 40.0,
        "msdyn_plannedcost": 3200.0, "msdyn_plannedsales": 5120.0, "msdyn_start": f"{pr.start}T09:00:00Z",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({cur})", "exchangerate": currency["exchangerate"]})
    lines: dict[str, tuple[str, int, str]] = {}
    for label, klass, category in (("expense", CLASS_EXPENSE, "Travel"), ("material", CLASS_MATERIAL, "Hardware")):
        line = str(uuid.uuid4())
        lines[label] = (line, klass, category)
        await p.dataverse.create("msdyn_estimatelines", {
            "msdyn_estimatelineid": line, "msdyn_description": f"Scenario {label} estimate",
            "msdyn_project@odata.bind": f"/msdyn_projects({pr.id})", "msdyn_task@odata.bind": f"/msdyn_projecttasks({task})",
            "msdyn_transactioncategory@odata.bind": f"/msdyn_transactioncategories({await category_id(p, category)})",
            "msdyn_transactionclassification": klass, "msdyn_transactiontypecode": TYPE_COST,
            "msdyn_quantity": 3.0, "msdyn_price": 125.0, "msdyn_amount": 375.0, "msdyn_documentdate": pr.start,
            "msdyn_billingtype": 192350001, "msdyn_company@odata.bind": f"/cdm_companies({pr.company_id})",
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({cur})", "exchangerate": currency["exchangerate"]})
    await p.wait()

    row = await p.finance.find("ProjCDSEstimateHours", {"dataAreaId": pr.area, "EstimateId": hours}) or {}
    c.equal("Finance hour estimate: project, hours, cost, sales, currency, exchange rate",
            (row.get("ProjectId"), row.get("Duration"), row.get("PlannedCostAmount"), row.get("PlannedSalesAmount"),
             row.get("SalesCurrency"), row.get("ExchangeRate")),
            (pr.number, 40.0, 3200.0, 5120.0, pr.accounting_currency, float(currency["exchangerate"])))
    staging = {"expense": "ProjCDSEstimateExpensesImports", "material": "ProjCDSEstimateMaterialImports"}
    for label, (line, _, category) in lines.items():
        got: dict[str, Any] = await p.finance.find(staging[label], {"dataAreaId": pr.area, "EstimateLineId": line}) or {}
        c.equal(f"Finance {label} estimate: project, category, type, quantity, price, currency",
                (got.get("ProjectId"), got.get("TransactionCategory"), got.get("TransType"), got.get("Quantity"),
                 got.get("Price"), got.get("CurrencyId")),
                (pr.number, category, "Cost", 3.0, 125.0, pr.accounting_currency))

    forecast = await p.finance.find("ProjHourForecasts", {"dataAreaId": pr.area, "ForecastId": hours}) or {}
    c.equal("Finance hour forecast from the estimate: project, task, hours, cost, sales, currency",
            (forecast.get("ProjectId"), forecast.get("TaskId"), forecast.get("Hours"), forecast.get("CostAmount"),
             forecast.get("SalesAmount"), forecast.get("CurrencyCode")),
            (pr.number, task, 40.0, 3200.0, 5120.0, pr.accounting_currency))
    for label, (line, _, category) in lines.items():
        got = await p.finance.find(FORECASTS[label], {"dataAreaId": pr.area, "ForecastId": line}) or {}
        c.equal(f"Finance {label} forecast from the estimate: project, category, quantity, cost price, amount",
                (got.get("ProjectId"), got.get("CategoryId"), got.get("Quantity"), got.get("CostPrice"),
                 got.get("Amount")), (pr.number, category, 3.0, 125.0, 375.0))

    # the project manager re-plans: more hours, and the material estimate is dropped
    await p.dataverse.patch("msdyn_resourceassignments", hours, {"msdyn_plannedwork": 56.0, "msdyn_plannedcost": 4480.0})
    r = await p.dataverse.http.delete(f"/api/data/v9.2/msdyn_estimatelines({lines['material'][0]})")
    c.check("Dataverse: material estimate deleted", r.status_code == 204, str(r.status_code))
    await p.wait()
    row = await p.finance.find("ProjCDSEstimateHours", {"dataAreaId": pr.area, "EstimateId": hours}) or {}
    c.equal("Finance hour estimate follows the change", (row.get("Duration"), row.get("PlannedCostAmount")),
            (56.0, 4480.0))
    c.check("Finance: the deleted material estimate is gone", await p.finance.find(
        staging["material"], {"dataAreaId": pr.area, "EstimateLineId": lines["material"][0]}) is None)
    forecast = await p.finance.find("ProjHourForecasts", {"dataAreaId": pr.area, "ForecastId": hours}) or {}
    c.equal("Finance hour forecast follows the change", (forecast.get("Hours"), forecast.get("CostAmount")),
            (56.0, 4480.0))
    c.check("Finance: the item forecast of the deleted material estimate is gone", await p.finance.find(
        FORECASTS["material"], {"dataAreaId": pr.area, "ForecastId": lines["material"][0]}) is None)
