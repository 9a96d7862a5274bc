"""The whole data set as one stream, in dependency order (every row after the rows it points at)."""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.demo import documents, reference, setup, transactions
from sandbox.demo.plan import Plan
from sandbox.demo.rows import DemoRow
from sandbox.demo.world import World


def generate(rows: int, seed: int, *, counterparts: bool = False) -> Iterator[DemoRow]:
    """Yield about ``rows`` rows of a Project Operations tenant, the same for the same seed.

    Order: Finance reference data and prerequisites; their Dataverse copies; setup (roles, categories,
    resources, contracts, projects, tasks, contract lines); estimates; actuals; transaction connections;
    Finance documents (expenses, vendor invoices). Nothing is kept between rows but bounded caches.
    ``counterparts`` adds the Finance copies of the Dataverse masters Finance documents point at (see
    :mod:`sandbox.demo.setup`).
    """
    return generate_plan(Plan.for_rows(rows), seed, counterparts=counterparts)


def generate_plan(plan: Plan, seed: int, *, counterparts: bool = False) -> Iterator[DemoRow]:
    w = World(seed, plan)
    yield from reference.finance_reference(w)
    yield from reference.dataverse_prerequisites(w)
    yield from setup.categories(w, counterparts=counterparts)
    yield from setup.resources(w)
    yield from setup.contracts_and_projects(w, counterparts=counterparts)
    yield from transactions.estimates(w)
    yield from transactions.actuals(w)
    yield from transactions.connections(w)
    yield from documents.expenses(w)
    yield from documents.vendor_invoices(w)
