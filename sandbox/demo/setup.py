"""Setup: resource roles, transaction categories, bookable resources, contracts and their lines,
milestones and funding sources, projects and tasks (Dataverse masters); project and expense categories
per legal entity (Finance).

``counterparts`` also yields the Finance rows the setup maps would create from the Dataverse masters
that Finance documents point at (shared categories, projects, tasks), so Finance can be loaded with
``validate=True`` before any sync has run.
"""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.demo import options as opt
from sandbox.demo.ids import pick
from sandbox.demo.plan import (
    CATEGORIES,
    COMPANIES,
    CONTRACT_LINES_PER_CONTRACT,
    EXPENSE_CATEGORIES,
    MILESTONES_PER_FIXED_LINE,
    ROLES,
    SALES_MARKUP,
    TASKS_PER_PROJECT,
)
from sandbox.demo.rows import DemoRow, day, dv, fo, money, stamp
from sandbox.demo.world import World

CLASS_OF_KIND = {"Time": opt.CLASS_TIME, "Expense": opt.CLASS_EXPENSE, "Material": opt.CLASS_MATERIAL}
# the category table's own class column keeps the emulator's older option values (not mapped by the catalog)
CATEGORY_CLASS_OF_KIND = {"Time": 690970000, "Expense": 690970001, "Material": 690970002}
FINANCE_TYPE_OF_KIND = {"Time": "Hour", "Expense": "Expense", "Material": "Item"}
TASK_NAMES = ("Project management", "Analysis", "Design", "Build", "Test", "Training", "Go-live", "Support")


def categories(w: World, *, counterparts: bool) -> Iterator[DemoRow]:
    for name, cost in ROLES:
        yield dv("bookableresourcecategories", {
            "bookableresourcecategoryid": w.id("bookableresourcecategory", name), "name": name,
            "description": f"{name} role", "msdyn_defaultcostprice": cost,
            "_transactioncurrencyid_value": w.currency_id("USD"), "exchangerate": 1.0})
    for i, cat in enumerate(CATEGORIES):
        yield dv("msdyn_transactioncategories", {
            "msdyn_transactioncategoryid": w.category_id(i), "msdyn_name": cat.name,
            "msdyn_description": f"{cat.kind}: {cat.name}", "msdyn_transactionclass": CATEGORY_CLASS_OF_KIND[cat.kind],
            "msdyn_unitgroup": "Time" if cat.kind == "Time" else "Default unit"})
    if counterparts:
        for i, cat in enumerate(CATEGORIES):
            yield fo("ProjCDSCategories", {"CategoryId": cat.name, "Name": f"{cat.kind}: {cat.name}",
                                           "IntegrationId": w.category_id(i)})
    for co in COMPANIES:
        for cat in CATEGORIES:
            yield fo("ProjectCategories", {"dataAreaId": co.area, "CategoryId": cat.name, "CategoryName": cat.name,
                                           "TransactionType": FINANCE_TYPE_OF_KIND[cat.kind],
                                           "CategoryGroupId": cat.kind, "SharedCategoryId": cat.name})
    for co in COMPANIES:
        for ec in EXPENSE_CATEGORIES:
            yield fo("ProjExpenseCategoryExports", {"dataAreaId": co.area, "ExpenseCategoryId": ec.id,
                                                    "Name": ec.name, "ProjectCategoryId": ec.category,
                                                    "ExpenseType": ec.expense_type, "IsActive": "Yes"})


def resources(w: World) -> Iterator[DemoRow]:
    for i in range(w.plan.workers):
        wk = w.worker(i)
        yield dv("bookableresources", {
            "bookableresourceid": wk.resource, "name": wk.resource_name, "resourcetype": opt.RESOURCE_USER,
            "_msdyn_worker_value": wk.guid, "_msdyn_organizationalunit_value": w.org_unit_id(wk.company),
            "msdyn_primaryemail": wk.email, "timezone": 0})


def _contract_value(w: World, p: int) -> tuple[float, float]:
    """(time and material budget, fixed price) of project ``p``'s contract."""
    return float(50_000 + 5_000 * pick(w.seed, "contract.tm", p, 90)), \
        float(10_000 + 1_500 * pick(w.seed, "contract.fixed", p, 40))


def contracts_and_projects(w: World, *, counterparts: bool) -> Iterator[DemoRow]:
    n = w.plan.projects
    for p in range(n):
        pr = w.project(p)
        tm, fixed = _contract_value(w, p)
        yield dv("salesorders", {
            "salesorderid": pr.contract_guid, "name": f"Contract {pr.name}", "ordernumber": pr.contract_number,
            "_msdyn_company_value": w.company_id(pr.company), "_customerid_value": pr.customer_guid,
            "_msdyn_contractorganizationalunitid_value": w.org_unit_id(pr.company),
            "msdyn_ordertype": opt.ORDER_TYPE_WORK_BASED, "totalamount": money(tm + fixed),
            "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
            "exchangerate": w.rate(pr.company.currency)})
    for p in range(n):
        pr = w.project(p)
        yield dv("msdyn_projects", {
            "msdyn_projectid": pr.guid, "msdyn_subject": pr.name, "msdyn_projectnumber": pr.number,
            "_msdyn_company_value": w.company_id(pr.company), "_msdyn_customer_value": pr.customer_guid,
            "_msdyn_contractorganizationalunitid_value": w.org_unit_id(pr.company),
            "_msdyn_projectmanager_value": w.worker(pr.manager).guid,
            "msdyn_description": f"{pr.name}, delivered by {pr.company.name}.",
            "msdyn_scheduledstart": stamp(pr.start), "msdyn_finish": stamp(pr.finish, 17),
            "_msdyn_salesorderid_value": pr.contract_guid,
            "msdyn_totalplannedcost": money(_contract_value(w, p)[0] / SALES_MARKUP),
            "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
            "exchangerate": w.rate(pr.company.currency)})
    if counterparts:
        for p in range(n):
            pr = w.project(p)
            yield fo("ProjCDSProjects", {
                "dataAreaId": pr.company.area, "ProjectID": pr.number, "ProjectName": pr.name[:60],
                "CustomerAccount": pr.customer, "ProjectType": "TimeMaterial", "ProjectStatus": "InProcess",
                "ProjectedStartDate": day(pr.start), "ProjectedEndDate": day(pr.finish),
                "Description": f"{pr.name}, delivered by {pr.company.name}.",
                "ProjectManagerPersonnelNumber": w.worker(pr.manager).number, "SourceDataID": pr.guid})
    for p in range(n):
        pr = w.project(p)
        for k in range(TASKS_PER_PROJECT):
            row = {"msdyn_projecttaskid": w.task_id(p, k), "msdyn_subject": TASK_NAMES[k],
                   "_msdyn_project_value": pr.guid, "msdyn_wbsid": w.wbs(k),
                   "_msdyn_company_value": w.company_id(pr.company),
                   "msdyn_scheduledstart": stamp(pr.start), "msdyn_scheduledend": stamp(pr.finish, 17),
                   "msdyn_effort": float(40 * (1 + pick(w.seed, "task.effort", p * 16 + k, 10))),
                   "msdyn_progress": 0.0}
            if k:
                row["_msdyn_parenttask_value"] = w.task_id(p, 0)
            yield dv("msdyn_projecttasks", row)
    if counterparts:
        for p in range(n):
            pr = w.project(p)
            for k in range(TASKS_PER_PROJECT):
                yield fo("ProjCDSTasks", {
                    "dataAreaId": pr.company.area, "ProjectId": pr.number, "Task": w.task_id(p, k),
                    "Name": TASK_NAMES[k], "ParentTask": w.task_id(p, 0) if k else None,
                    "WorkBreakdownStructureID": w.wbs(k)})
    yield from _contract_lines(w)


def _contract_lines(w: World) -> Iterator[DemoRow]:
    n = w.plan.projects
    assert CONTRACT_LINES_PER_CONTRACT == 2  # a time and material line, a fixed price line
    for p in range(n):
        pr = w.project(p)
        tm, fixed = _contract_value(w, p)
        common = {"_salesorderid_value": pr.contract_guid,
                  "_msdyn_project_value": pr.guid, "_msdyn_company_value": w.company_id(pr.company),
                  "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
                  "exchangerate": w.rate(pr.company.currency)}
        yield dv("salesorderdetails", {
            "salesorderdetailid": pr.tm_line_guid, "productdescription": "Time and material services",
            "msdyn_lineid": f"{pr.contract_number}-1", "msdyn_billingmethod": opt.BILLING_METHOD_TM,
            "msdyn_invoicefrequency": "Monthly", "quantity": 1.0, "priceperunit": tm, "extendedamount": tm,
            "msdyn_budgetamount": tm, **common})
        yield dv("salesorderdetails", {
            "salesorderdetailid": pr.fixed_line_guid, "productdescription": "Fixed price deliverables",
            "msdyn_lineid": f"{pr.contract_number}-2", "msdyn_billingmethod": opt.BILLING_METHOD_FIXED,
            "quantity": 1.0, "priceperunit": fixed, "extendedamount": fixed, "msdyn_budgetamount": fixed,
            **common})
    for p in range(n):
        pr = w.project(p)
        fixed = _contract_value(w, p)[1]
        span = (pr.finish - pr.start) / MILESTONES_PER_FIXED_LINE
        for m in range(MILESTONES_PER_FIXED_LINE):
            name = f"Milestone {m + 1}"
            yield dv("msdyn_contractlinescheduleofvalues", {
                "msdyn_contractlinescheduleofvalueid": w.id("msdyn_contractlinescheduleofvalue",
                                                            f"{pr.contract_number}/{m}"),
                "msdyn_name": name, "_msdyn_contractline_value": pr.fixed_line_guid,
                "_msdyn_project_value": pr.guid, "_msdyn_company_value": w.company_id(pr.company),
                "msdyn_milestonedate": day(pr.start + span * (m + 1)),
                "msdyn_invoicestatus": opt.MILESTONE_NOT_READY,
                "msdyn_amount": money(fixed / MILESTONES_PER_FIXED_LINE),
                "_transactioncurrencyid_value": w.currency_id(pr.company.currency),
                "exchangerate": w.rate(pr.company.currency)})
    for p in range(n):
        pr = w.project(p)
        yield dv("msdyn_projectcontractsplitbillingrules", {
            "msdyn_projectcontractsplitbillingruleid": w.id("msdyn_projectcontractsplitbillingrule",
                                                            pr.contract_number),
            "msdyn_name": f"{pr.customer} 100%", "_msdyn_contract_value": pr.contract_guid,
            "_msdyn_customer_value": pr.customer_guid, "_msdyn_company_value": w.company_id(pr.company),
            "msdyn_allocationpercentage": 100.0, "msdyn_fundingtype": opt.FUNDING_CUSTOMER})
