"""The facts of one data set (seed + plan) that rows in several entity sets share.

Every fact is a pure function of the seed and an index, so a generator that needs its parent's
company, number or GUID recomputes it instead of keeping the parent around (bounded caches only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from sandbox.demo.ids import guid, pick
from sandbox.demo.plan import (
    CATEGORIES,
    COMPANIES,
    CURRENCIES,
    PERIOD_START,
    ROLES,
    TASKS_PER_PROJECT,
    Company,
    Plan,
    finance_vendor,
    finance_vendors,
    shared_customer,
    shared_customers,
)

_PER_USD = {c.code: c.per_usd for c in CURRENCIES}
FIRST_NAMES = ("Alex", "Sam", "Maria", "Jonas", "Priya", "Chen", "Olivia", "Noah", "Fatima", "Lukas",
               "Emma", "Diego", "Hannah", "Kenji", "Amara", "Tom", "Sofia", "Ivan", "Leila", "Ben")
LAST_NAMES = ("Smith", "Müller", "Garcia", "Patel", "Nakamura", "Brown", "Schmidt", "Okafor", "Rossi",
              "Johnson", "Wagner", "Kowalski", "Dubois", "Andersson", "Silva", "Taylor", "Novak", "Khan")
CUSTOMER_WORDS = ("Northwind", "Fabrikam", "Tailspin", "Litware", "Adventure Works", "Woodgrove",
                  "Proseware", "Wingtip", "Alpine Ski", "Coho Winery", "Lamna", "Trey Research")
VENDOR_WORDS = ("Contoso Supplies", "Datum Hardware", "Blue Yonder Freight", "Graphic Design Institute",
                "Humongous Insurance", "Southridge Video", "Relecloud", "Margie's Travel")
PROJECT_WORDS = ("ERP rollout", "CRM upgrade", "Data platform", "Field service pilot", "Finance cutover",
                 "Warehouse automation", "Portal build", "Security review", "Cloud migration", "BI dashboards")


@dataclass(frozen=True)
class Worker:
    index: int
    company: Company
    number: str  # Finance PersonnelNumber = cdm_workernumber
    first: str
    last: str
    role: int  # index into ROLES
    guid: str  # cdm_workerid
    resource: str  # bookableresourceid

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def resource_name(self) -> str:  # bookableresource.name is an alternate key: the number keeps it unique
        return f"{self.first} {self.last} ({self.number})"

    @property
    def email(self) -> str:
        return f"{self.first}.{self.last}.{self.number}@contoso.example".lower().replace("ü", "ue")


@dataclass(frozen=True)
class Project:
    index: int
    company: Company
    number: str  # msdyn_projectnumber = Finance ProjectID
    name: str
    guid: str
    customer: str  # account number (a customer on both sides)
    customer_guid: str
    contract_number: str  # salesorder.ordernumber = Finance ProjectContractID
    contract_guid: str
    tm_line_guid: str  # time and material contract line (actuals are billed on it)
    fixed_line_guid: str
    manager: int  # worker index
    start: date
    finish: date


class World:
    def __init__(self, seed: int, plan: Plan) -> None:
        self.seed = seed
        self.plan = plan
        self.shared_customers = shared_customers(plan.customers_per_company)
        self.finance_vendors = finance_vendors(plan.vendors_per_company)
        # bounded caches of parents (a 1,000,000-row set has ~15,000 of them), freed with the world
        self.id = lru_cache(maxsize=1 << 15)(self._id)
        self.worker = lru_cache(maxsize=1 << 14)(self._worker)
        self.project = lru_cache(maxsize=1 << 14)(self._project)

    # --- GUIDs of reference rows ------------------------------------------------------------------
    def _id(self, table: str, key: str) -> str:
        return guid(self.seed, table, key)

    def currency_id(self, code: str) -> str:
        return self.id("transactioncurrency", code)

    def company_id(self, company: Company) -> str:
        return self.id("cdm_company", company.code)

    def org_unit_id(self, company: Company) -> str:
        return self.id("msdyn_organizationalunit", company.code)

    def unit_id(self, name: str) -> str:
        return self.id("uom", name)

    def role_id(self, role: int) -> str:
        return self.id("bookableresourcecategory", ROLES[role][0])

    def category_id(self, category: int) -> str:
        return self.id("msdyn_transactioncategory", CATEGORIES[category].name)

    @staticmethod
    def rate(currency: str) -> float:
        """Units of ``currency`` per US dollar (Dataverse ``exchangerate``: base currency to transaction)."""
        return _PER_USD[currency]

    # --- parties ------------------------------------------------------------------------------------
    @staticmethod
    def customer_account(company: Company, k: int) -> str:
        return f"{company.code[:2]}-C{k:05d}"

    def customer_id(self, company: Company, k: int) -> str:
        return self.id("account", self.customer_account(company, k))

    def customer_name(self, company: Company, k: int) -> str:
        word = CUSTOMER_WORDS[pick(self.seed, "customer.name", k * 7 + COMPANIES.index(company),
                                   len(CUSTOMER_WORDS))]
        return f"{word} {company.city} {k + 1}"

    @staticmethod
    def vendor_account(company: Company, k: int) -> str:
        return f"{company.code[:2]}-V{k:05d}"

    def vendor_name(self, company: Company, k: int) -> str:
        word = VENDOR_WORDS[pick(self.seed, "vendor.name", k * 7 + COMPANIES.index(company), len(VENDOR_WORDS))]
        return f"{word} {company.city} {k + 1}"

    def finance_vendor_of(self, company: Company, index: int) -> str:
        """The vendor account a document ``index`` of ``company`` is bought from (a Finance vendor)."""
        return self.vendor_account(company, finance_vendor(pick(self.seed, "doc.vendor", index,
                                                               self.finance_vendors)))

    def _worker(self, i: int) -> Worker:
        company = COMPANIES[i % len(COMPANIES)]
        number = f"{company.code[:2]}{i + 1:06d}"
        return Worker(
            index=i, company=company, number=number,
            first=FIRST_NAMES[pick(self.seed, "worker.first", i, len(FIRST_NAMES))],
            last=LAST_NAMES[pick(self.seed, "worker.last", i, len(LAST_NAMES))],
            role=pick(self.seed, "worker.role", i, len(ROLES)),
            guid=self.id("cdm_worker", number), resource=self.id("bookableresource", number),
        )

    # --- projects -----------------------------------------------------------------------------------
    def _project(self, p: int) -> Project:
        company = COMPANIES[pick(self.seed, "project.company", p, len(COMPANIES))]
        customer = shared_customer(pick(self.seed, "project.customer", p, self.shared_customers))
        account = self.customer_account(company, customer)
        number = f"{company.code}-P{p + 1:06d}"
        contract = f"{company.code}-C{p + 1:06d}"
        start = PERIOD_START + timedelta(days=pick(self.seed, "project.start", p, 150))
        finish = start + timedelta(days=90 + pick(self.seed, "project.length", p, 120))
        word = PROJECT_WORDS[pick(self.seed, "project.name", p, len(PROJECT_WORDS))]
        return Project(
            index=p, company=company, number=number, name=f"{word} for {self.customer_name(company, customer)}",
            guid=self.id("msdyn_project", number), customer=account,
            customer_guid=self.customer_id(company, customer), contract_number=contract,
            contract_guid=self.id("salesorder", contract),
            tm_line_guid=self.id("salesorderdetail", f"{contract}-1"),
            fixed_line_guid=self.id("salesorderdetail", f"{contract}-2"),
            manager=self.worker_in(company, "project.manager", p), start=start, finish=finish,
        )

    def worker_in(self, company: Company, salt: str, index: int) -> int:
        """A seeded worker of ``company`` (workers are striped over the legal entities by index)."""
        n_co, c = len(COMPANIES), COMPANIES.index(company)
        per_company = (self.plan.workers - c + n_co - 1) // n_co
        return pick(self.seed, salt, index, per_company) * n_co + c

    def task_id(self, p: int, k: int) -> str:
        """Task ``k`` of project ``p``: 0 is the summary task (WBS 1), 1..7 its leaves (WBS 1.k)."""
        return self.id("msdyn_projecttask", f"{self.project(p).number}/{k}")

    @staticmethod
    def wbs(k: int) -> str:
        return "1" if k == 0 else f"1.{k}"

    def leaf_task(self, salt: str, index: int) -> int:
        return 1 + pick(self.seed, salt, index, TASKS_PER_PROJECT - 1)

    def day_in(self, project: Project, salt: str, index: int) -> date:
        span = max(1, (project.finish - project.start).days)
        return project.start + timedelta(days=pick(self.seed, salt, index, span))
