"""The generator: reproducible by seed, sized as asked, consistent, valid for both emulators."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from itertools import islice

import pytest
from demochecks import References, row_problems

from sandbox.demo import DATAVERSE, FINANCE, Plan, generate
from sandbox.demo.ids import guid
from sandbox.demo.plan import COMPANIES

COUNTERPART_SETS = {"ProjCDSCategories", "ProjCDSProjects", "ProjCDSTasks"}


def digest(rows: int, seed: int, **kw: bool) -> str:
    h = hashlib.sha256()
    for r in generate(rows, seed, **kw):
        h.update(json.dumps(r, sort_keys=True).encode())
    return h.hexdigest()


def test_same_seed_gives_identical_rows() -> None:
    assert list(generate(3000, 11)) == list(generate(3000, 11))
    assert digest(20_000, 5) == digest(20_000, 5)


def test_different_seed_gives_different_rows() -> None:
    a, b = list(generate(3000, 1)), list(generate(3000, 2))
    assert [(r.side, r.entity_set) for r in a] == [(r.side, r.entity_set) for r in b]  # same shape
    differing = sum(1 for x, y in zip(a, b, strict=True) if x.row != y.row)
    assert differing > 0.9 * len(a)  # GUIDs depend on the seed; values too
    actual_a = [r.row for r in a if r.entity_set == "msdyn_actuals"]
    actual_b = [r.row for r in b if r.entity_set == "msdyn_actuals"]
    strip = ("msdyn_actualid", "_msdyn_project_value", "_msdyn_task_value", "_msdyn_bookableresource_value",
             "_msdyn_contract_value", "_msdyn_contractline_value", "_msdyn_customer_value")
    values_a = [{k: v for k, v in r.items() if k not in strip} for r in actual_a]
    values_b = [{k: v for k, v in r.items() if k not in strip} for r in actual_b]
    assert sum(1 for x, y in zip(values_a, values_b, strict=False) if x != y) > 0.5 * len(values_a)


def test_guids_are_uuid5_of_seed_table_and_key() -> None:
    import uuid

    from sandbox.demo.ids import DEMO_NAMESPACE
    assert guid(7, "msdyn_project", "USPM-P000001") == str(uuid.uuid5(DEMO_NAMESPACE, "7/msdyn_project/USPM-P000001"))
    companies = [r.row for r in generate(1000, 7) if r.entity_set == "cdm_companies"]
    assert {c["cdm_companyid"] for c in companies} == {guid(7, "cdm_company", co.code) for co in COMPANIES}


@pytest.mark.parametrize("rows", [0, 1_000, 10_000, 60_000])
def test_total_is_close_to_the_request_and_matches_the_plan(rows: int) -> None:
    plan = Plan.for_rows(rows)
    n = sum(1 for _ in generate(rows, 3))
    assert n == plan.expected_rows()
    if rows >= 10_000:
        assert abs(n - rows) <= 3  # actuals fill the remainder in steps of one transaction (3 rows)
    with_counterparts = sum(1 for _ in generate(rows, 3, counterparts=True))
    assert with_counterparts == plan.expected_rows(counterparts=True)


def test_mix_is_realistic() -> None:
    counts = Counter(r.entity_set for r in generate(50_000, 4))
    assert counts["LegalEntities"] == counts["cdm_companies"] == 3
    assert 10 <= counts["msdyn_projects"] <= 99  # tens of projects
    actuals = counts["msdyn_actuals"]
    assert actuals > 0.5 * sum(counts.values())  # many actuals
    assert counts["msdyn_transactionconnections"] * 2 == actuals  # one connection per cost/sales pair
    assert counts["msdyn_projecttasks"] == 8 * counts["msdyn_projects"]
    assert counts["ProjExpenseExports"] > counts["msdyn_projects"]
    big = Plan.for_rows(1_000_000)
    assert big.projects == 1000 and big.transactions * 3 > 0.9 * 1_000_000


def test_every_row_passes_the_target_schema() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    for item in generate(30_000, 9, counterparts=True):
        seen[(item.side, item.entity_set)] += 1
        problems.extend(row_problems(item))
    assert problems[:10] == []
    # every table the demo is meant to cover is there
    for side, name in [(FINANCE, "ExchangeRates"), (FINANCE, "Ledgers"), (FINANCE, "Workers"),
                       (FINANCE, "CustomersV3"), (FINANCE, "VendorsV2"), (FINANCE, "ProjExpenseCategoryExports"),
                       (FINANCE, "ProjExpenseExports"), (FINANCE, "ProjVendInvoiceHeaderExports"),
                       (FINANCE, "ProjVendInvoiceLineExports"), (DATAVERSE, "bookableresourcecategories"),
                       (DATAVERSE, "msdyn_transactioncategories"), (DATAVERSE, "bookableresources"),
                       (DATAVERSE, "accounts"), (DATAVERSE, "salesorders"), (DATAVERSE, "salesorderdetails"),
                       (DATAVERSE, "msdyn_projects"), (DATAVERSE, "msdyn_projecttasks"),
                       (DATAVERSE, "msdyn_resourceassignments"), (DATAVERSE, "msdyn_estimatelines"),
                       (DATAVERSE, "msdyn_actuals"), (DATAVERSE, "msdyn_transactionconnections")]:
        assert seen[(side, name)] > 0, name


def test_schema_check_is_not_blind() -> None:
    """The check above would catch a wrong option value, an over-long text and a missing mandatory field."""
    first = next(r for r in generate(1000, 1) if r.entity_set == "msdyn_actuals")
    bad = first._replace(row={**first.row, "msdyn_transactiontypecode": 1})
    assert row_problems(bad)
    fin = next(r for r in generate(1000, 1) if r.entity_set == "ProjExpenseExports")
    assert row_problems(fin._replace(row={**fin.row, "ProjectId": "X" * 21}))
    assert row_problems(fin._replace(row={k: v for k, v in fin.row.items() if k != "Amount"}))


def test_every_reference_resolves_to_an_earlier_row() -> None:
    refs = References()
    refs.feed(generate(30_000, 21, counterparts=True))
    assert refs.problems[:10] == []
    assert refs.checked > 100_000


def test_reference_check_is_not_blind() -> None:
    rows = list(generate(1000, 21, counterparts=True))
    i = next(i for i, r in enumerate(rows) if r.entity_set == "msdyn_projects")
    j = next(i for i, r in enumerate(rows) if r.entity_set == "ProjExpenseExports")
    rows[i] = rows[i]._replace(row={**rows[i].row, "_msdyn_customer_value": guid(21, "account", "nobody")})
    rows[j] = rows[j]._replace(row={**rows[j].row, "ProjectId": "USPM-P999999"})
    refs = References()
    refs.feed(rows)
    assert len(refs.problems) == 3, refs.problems  # the account; the expense's project and its task
    assert "account" in refs.problems[0]
    assert "ProjCDSProjects" in refs.problems[1] and "ProjCDSTasks" in refs.problems[2]


def test_counterparts_only_add_the_finance_copies_of_dataverse_masters() -> None:
    plain = list(generate(5000, 8))
    both = list(generate(5000, 8, counterparts=True))
    assert [r for r in both if r.entity_set not in COUNTERPART_SETS] == plain
    projects = {(r.row["msdyn_projectnumber"], r.row["msdyn_projectid"], r.row["_msdyn_company_value"])
                for r in plain if r.entity_set == "msdyn_projects"}
    company_ids = {r.row["cdm_companyid"]: r.row["cdm_companycode"] for r in plain if r.entity_set == "cdm_companies"}
    copies = {(r.row["ProjectID"], r.row["SourceDataID"], r.row["dataAreaId"])
              for r in both if r.entity_set == "ProjCDSProjects"}
    assert copies == {(n, g, company_ids[c].lower()) for n, g, c in projects}
    tasks = {r.row["msdyn_projecttaskid"] for r in plain if r.entity_set == "msdyn_projecttasks"}
    assert {r.row["Task"] for r in both if r.entity_set == "ProjCDSTasks"} == tasks


def test_finance_documents_point_at_dataverse_masters_by_their_finance_keys() -> None:
    """Without counterparts, expenses and vendor invoice lines name projects, tasks and categories that
    exist as Dataverse masters (the setup maps create their Finance copies)."""
    rows = list(generate(8000, 13))
    numbers = {r.row["msdyn_projectnumber"] for r in rows if r.entity_set == "msdyn_projects"}
    tasks = {r.row["msdyn_projecttaskid"] for r in rows if r.entity_set == "msdyn_projecttasks"}
    categories = {r.row["msdyn_name"] for r in rows if r.entity_set == "msdyn_transactioncategories"}
    for r in rows:
        if r.entity_set == "ProjExpenseExports":
            assert r.row["ProjectId"] in numbers and r.row["ActivityNumber"] in tasks
        elif r.entity_set == "ProjVendInvoiceLineExports":
            assert r.row["ProjectId"] in numbers and r.row["TaskId"] in tasks
            assert r.row["TransactionCategory"] in categories
            assert r.row["ProjectId"].startswith(r.row["dataAreaId"].upper())


def test_prerequisite_copies_match_their_finance_masters() -> None:
    rows = list(generate(5000, 2))
    def of(name: str) -> list[dict]:  # type: ignore[type-arg]
        return [r.row for r in rows if r.entity_set == name]
    assert {r["cdm_companycode"] for r in of("cdm_companies")} == {r["LegalEntityId"] for r in of("LegalEntities")}
    assert {(r["cdm_workernumber"], r["cdm_fullname"]) for r in of("cdm_workers")} == \
        {(r["PersonnelNumber"], r["Name"]) for r in of("Workers")}
    company = {r["cdm_companyid"]: r["cdm_companycode"].lower() for r in of("cdm_companies")}
    dv_customers = {(company[r["_msdyn_company_value"]], r["accountnumber"]): r["name"] for r in of("accounts")}
    fo_customers = {(r["dataAreaId"], r["CustomerAccount"]): r["OrganizationName"] for r in of("CustomersV3")}
    shared = dv_customers.keys() & fo_customers.keys()
    assert shared and dv_customers.keys() - shared and fo_customers.keys() - shared  # both directions have work
    assert all(dv_customers[k] == fo_customers[k] for k in shared)


def test_streams_lazily() -> None:
    """Asking for a million rows costs nothing until they are consumed."""
    first = list(islice(generate(1_000_000, 1), 50))
    assert first[0].entity_set == "Currencies" and len(first) == 50
