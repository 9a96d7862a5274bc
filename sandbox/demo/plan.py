"""How big each part of a demo data set is, from the requested total, and the fixed catalogues.

The mix follows a Project Operations tenant: three legal entities, one project per ~1,000 rows
(tens of projects for tens of thousands of rows), a handful of tasks, estimates and documents per
project, and the rest of the budget in actuals (a cost and an unbilled sales actual plus the
transaction connection between them, per transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Company:
    code: str  # cdm_companycode (upper case); Finance dataAreaId is its lower case
    name: str
    currency: str
    country: str
    language: str
    time_zone: str
    city: str

    @property
    def area(self) -> str:
        return self.code.lower()


@dataclass(frozen=True)
class Currency:
    code: str
    name: str
    symbol: str
    per_usd: float  # units of this currency per US dollar at the start of the period


@dataclass(frozen=True)
class Category:
    """A transaction category (Dataverse) = shared category + project category per legal entity (Finance)."""

    name: str
    kind: str  # Time | Expense | Material


@dataclass(frozen=True)
class ExpenseCategory:
    id: str
    name: str
    category: str  # the Expense transaction category it posts to
    expense_type: str  # Finance ExpenseType symbol


COMPANIES: tuple[Company, ...] = (
    Company("USPM", "Contoso Project Services US", "USD", "USA", "en-us", "Pacific Standard Time", "Seattle"),
    Company("GBPM", "Contoso Project Services UK", "GBP", "GBR", "en-gb", "GMT Standard Time", "London"),
    Company("DEPM", "Contoso Project Services DE", "EUR", "DEU", "de", "W. Europe Standard Time", "Berlin"),
)
CURRENCIES: tuple[Currency, ...] = (
    Currency("USD", "US dollar", "$", 1.0),
    Currency("GBP", "Pound sterling", "£", 0.79),
    Currency("EUR", "Euro", "€", 0.92),
)
RATE_TYPE = "Default"
ROLES: tuple[tuple[str, float], ...] = (  # resource role, cost price per hour (USD)
    ("Project Manager", 95.0), ("Solution Architect", 110.0), ("Developer", 80.0),
    ("Functional Consultant", 85.0), ("Tester", 60.0), ("Trainer", 55.0),
)
SALES_MARKUP = 1.6  # sales price = cost price x markup
CATEGORIES: tuple[Category, ...] = (
    Category("Standard time", "Time"), Category("Overtime", "Time"),
    Category("Travel", "Expense"), Category("Hotel", "Expense"), Category("Meals", "Expense"),
    Category("Mileage", "Expense"),
    Category("Hardware", "Material"), Category("Software licences", "Material"),
)
EXPENSE_CATEGORIES: tuple[ExpenseCategory, ...] = (
    ExpenseCategory("Airfare", "Airfare", "Travel", "Travel"),
    ExpenseCategory("Taxi", "Taxi and rail", "Travel", "Travel"),
    ExpenseCategory("Hotel", "Hotel", "Hotel", "Hotel"),
    ExpenseCategory("Meals", "Meals", "Meals", "Meals"),
    ExpenseCategory("Mileage", "Mileage", "Mileage", "Mileage"),
)
UNITS: tuple[tuple[str, float], ...] = (("Hour", 1.0), ("Day", 8.0), ("Each", 1.0))
PERIOD_START = date(2024, 1, 1)
PERIOD_MONTHS = 12

# per project
TASKS_PER_PROJECT = 8  # one summary task (WBS 1) and seven leaves (1.1 ... 1.7)
ESTIMATE_LINES_PER_PROJECT = 4  # two expense, two material
CONTRACT_LINES_PER_CONTRACT = 2  # time and material, fixed price
MILESTONES_PER_FIXED_LINE = 3
EXPENSES_PER_PROJECT = 12
VENDOR_INVOICES_PER_PROJECT = 1
LINES_PER_VENDOR_INVOICE = 3
ROWS_PER_PROJECT = 1000
ROWS_PER_TRANSACTION = 3  # cost actual, unbilled sales actual, their connection


@dataclass(frozen=True)
class Plan:
    """Counts of the scaled parts; everything else is the fixed catalogues above."""

    projects: int
    workers: int
    customers_per_company: int
    vendors_per_company: int
    transactions: int

    @property
    def tasks(self) -> int:
        return self.projects * TASKS_PER_PROJECT

    @property
    def expenses(self) -> int:
        return self.projects * EXPENSES_PER_PROJECT

    @property
    def vendor_invoices(self) -> int:
        return self.projects * VENDOR_INVOICES_PER_PROJECT

    @staticmethod
    def for_rows(rows: int) -> Plan:
        """The plan whose total is close to ``rows`` (never fewer than three projects' worth)."""
        if rows < 0:
            raise ValueError("rows must be >= 0")
        projects = max(3, rows // ROWS_PER_PROJECT)
        workers = max(6, projects // 2)
        customers = max(6, projects // 6)
        vendors = max(5, projects // 20)
        fixed = Plan(projects, workers, customers, vendors, 0).expected_rows()
        transactions = max(2 * projects, (rows - fixed) // ROWS_PER_TRANSACTION)
        return Plan(projects, workers, customers, vendors, transactions)

    def expected_rows(self, *, counterparts: bool = False) -> int:
        """The number of rows :func:`sandbox.demo.generate` yields for this plan."""
        n_co, n_cur, n_cat = len(COMPANIES), len(CURRENCIES), len(CATEGORIES)
        reference = (
            n_cur + n_co + n_cur * (n_cur - 1) * PERIOD_MONTHS + n_co  # currencies, LEs, rates, ledgers
            + n_cur + len(UNITS) + n_co + n_co  # transaction currencies, units, companies, org units
            + len(ROLES) + n_cat + n_co * n_cat + n_co * len(EXPENSE_CATEGORIES)
        )
        people = 3 * self.workers  # Finance worker, its Dataverse copy, its bookable resource
        customers = n_co * self.customers_per_company
        shared = sum(1 for k in range(self.customers_per_company) if customer_side(k) == "both")
        vendors = 2 * n_co * self.vendors_per_company  # the vendor and its Dataverse account
        parties = customers + n_co * shared + vendors
        leaves = TASKS_PER_PROJECT - 1
        per_project = (
            1 + TASKS_PER_PROJECT + leaves + ESTIMATE_LINES_PER_PROJECT  # project, tasks, assignments
            + 1 + CONTRACT_LINES_PER_CONTRACT + MILESTONES_PER_FIXED_LINE + 1  # contract, lines, funding
            + EXPENSES_PER_PROJECT + VENDOR_INVOICES_PER_PROJECT * (1 + LINES_PER_VENDOR_INVOICE)
        )
        extra = (n_cat + self.projects * (1 + TASKS_PER_PROJECT)) if counterparts else 0
        return (reference + people + parties + self.projects * per_project
                + ROWS_PER_TRANSACTION * self.transactions + extra)


def customer_side(k: int) -> str:
    """Where customer number ``k`` of a company is mastered: ``both`` (already in sync), or only on
    ``finance`` or ``dataverse``, so the bidirectional customers map has work in each direction."""
    return {4: "finance", 5: "dataverse"}.get(k % 6, "both")


def shared_customer(m: int) -> int:
    """The customer number of the ``m``-th customer that exists on both sides."""
    return (m // 4) * 6 + m % 4


def shared_customers(customers_per_company: int) -> int:
    return sum(1 for k in range(customers_per_company) if customer_side(k) == "both")


def vendor_side(k: int) -> str:
    """Vendors are mastered in Finance; every fifth exists only in Dataverse (the map's other direction)."""
    return "dataverse" if k % 5 == 4 else "finance"


def finance_vendor(m: int) -> int:
    """The vendor number of the ``m``-th Finance vendor."""
    return (m // 4) * 5 + m % 4


def finance_vendors(vendors_per_company: int) -> int:
    return sum(1 for k in range(vendors_per_company) if vendor_side(k) == "finance")
