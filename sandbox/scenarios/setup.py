"""Setup and configuration (po-maps.md §2): legal entities from Finance; a transaction category made in
Dataverse becomes a shared category in Finance, for which the accountant creates a project category in
every legal entity; a resource role made in Dataverse reaches Finance."""

from __future__ import annotations

import uuid

from sandbox.scenarios.pipeline import Pipeline
from sandbox.scenarios.result import Checks

# Finance's project transaction types, one shared category each (po-maps.md §2), sorted
TRANSACTION_TYPES = ["Expense", "Fee", "Hour", "Item"]


async def run(p: Pipeline, c: Checks) -> None:
    finance = {r["LegalEntityId"].upper(): r["Name"] for r in await p.finance.query("LegalEntities")}
    dataverse = {r["cdm_companycode"]: r["cdm_name"] for r in await p.dataverse.query("cdm_companies")}
    c.equal("legal entities: the same codes and names in both systems", dataverse, finance)

    name = f"Workshop {uuid.uuid4().hex[:4]}"
    category = str(uuid.uuid4())
    await p.dataverse.create("msdyn_transactioncategories", {
        "msdyn_transactioncategoryid": category, "msdyn_name": name, "msdyn_description": f"Time: {name}",
        "msdyn_transactionclass": 690970000})
    role = f"Scenario role {uuid.uuid4().hex[:4]}"
    role_id = str(uuid.uuid4())
    await p.dataverse.create("bookableresourcecategories", {"bookableresourcecategoryid": role_id, "name": role,
                                                            "description": "Scenario resource role"})
    await p.wait()
    shared = await p.finance.find("ProjCDSCategories", {"CategoryId": name}) or {}
    c.equal("transaction category -> Finance shared category (name, integration id)",
            (shared.get("CategoryId"), shared.get("IntegrationId")), (name, category))
    for area in (code.lower() for code in finance):
        await p.finance.create("ProjectCategories", {"dataAreaId": area, "CategoryId": name, "CategoryName": name,
                                                     "TransactionType": "Hour", "SharedCategoryId": name})
    made = await p.finance.query("ProjectCategories", "SharedCategoryId eq {}", name)
    c.equal("the accountant's project category exists in every legal entity",
            sorted(r["dataAreaId"] for r in made), sorted(code.lower() for code in finance))
    roles = await p.finance.find("ProjCDSResourceRoles", {"ResourceRoleId": role}) or {}
    c.equal("resource role -> Finance (name, integration id)", (roles.get("ResourceRoleId"), roles.get("IntegrationId")),
            (role, role_id))
    per_type = await p.finance.query("ProjSharedCategories", "CategoryId eq {}", name)
    c.equal("Finance: one shared category per transaction type, traced to the Dataverse category",
            sorted((r["TransactionType"], r["IntegrationId"]) for r in per_type),
            [(t, category) for t in TRANSACTION_TYPES])
    copies = await p.finance.query("ProjResourceRoles", "ResourceRoleId eq {}", role)
    c.equal("Finance: the resource role copied to every legal entity",
            sorted((r["dataAreaId"], r["IntegrationId"]) for r in copies),
            sorted((code.lower(), role_id) for code in finance))
