"""The map files in maps/: each one loads into TableMap, and together they match the table list
in docs/catalog-tables.md (the names, tables, entity sets, directions and company striping)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from shared.catalog.models import Direction, Lookup, TableMap, ValueMap
from shared.catalog.validate import validate_directory

ROOT = Path(__file__).resolve().parents[2]
MAPS_DIR = ROOT / "maps"
TABLE_DOC = ROOT / "docs" / "catalog-tables.md"
MAP_FILES = sorted(MAPS_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class DocRow:
    """One row of docs/catalog-tables.md."""

    name: str
    area: str
    direction: str
    table: str
    entity_set: str
    primary_id: str
    finance_entity: str
    finance_entity_set: str
    company_specific: bool


def _first_words(cell: str) -> list[str]:
    # "msdyn_estimatelineid (transaction class Expense)" -> the names before any remark in brackets
    return [re.split(r"\s|\(|\*", part.strip(), maxsplit=1)[0] for part in cell.split(" / ")]


def doc_rows() -> list[DocRow]:
    rows: list[DocRow] = []
    for line in TABLE_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not re.fullmatch(r"[a-z][a-z0-9_]*", cells[0]) or cells[0] == "map":
            continue
        name, area, direction, dataverse, finance, company = cells
        table, entity_set, primary_id = _first_words(dataverse)
        entity, finance_set = _first_words(finance)
        rows.append(
            DocRow(name, area, direction.split()[0], table, entity_set, primary_id, entity, finance_set,
                   company.startswith("yes"))
        )
    return rows


def load(path: Path) -> TableMap:
    return TableMap.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def catalog() -> dict[str, TableMap]:
    return {path.stem: load(path) for path in MAP_FILES}


def test_the_table_doc_lists_27_maps() -> None:
    # Guards the parser below: if the doc's layout changes, the comparisons must not pass vacuously.
    rows = doc_rows()
    assert len(rows) == 27
    assert len({r.name for r in rows}) == 27


@pytest.mark.parametrize("path", MAP_FILES, ids=[p.stem for p in MAP_FILES])
def test_file_loads_and_is_named_after_its_map(path: Path) -> None:
    table_map = load(path)
    assert table_map.name == path.stem


def test_map_names_are_unique() -> None:
    names = [yaml.safe_load(p.read_text(encoding="utf-8"))["name"] for p in MAP_FILES]
    assert len(names) == len(set(names))


def test_every_map_in_the_doc_has_a_file_and_no_file_is_extra(catalog: dict[str, TableMap]) -> None:
    assert sorted(catalog) == sorted(r.name for r in doc_rows())


@pytest.mark.parametrize("row", doc_rows(), ids=lambda r: r.name)
def test_map_matches_its_doc_row(row: DocRow, catalog: dict[str, TableMap]) -> None:
    m = catalog[row.name]
    assert m.area.value == row.area
    assert m.direction.value == row.direction
    assert (m.dataverse.table, m.dataverse.entity_set, m.dataverse.primary_id) == (
        row.table, row.entity_set, row.primary_id)
    assert (m.finance.entity, m.finance.entity_set) == (row.finance_entity, row.finance_entity_set)
    assert (m.company is not None) == row.company_specific


def test_depends_on_and_lookups_name_existing_maps(catalog: dict[str, TableMap]) -> None:
    for m in catalog.values():
        for dep in m.depends_on:
            assert dep in catalog, f"{m.name} depends on unknown map {dep}"
        for fm in m.fields:
            if isinstance(fm.transform, Lookup) and fm.transform.map is not None:
                assert fm.transform.map in catalog, f"{m.name}: {fm.label} looks up unknown map"
                assert fm.transform.map in m.depends_on or fm.transform.map == m.name
            elif isinstance(fm.transform, Lookup):  # a reference lookup: a Dataverse table no map writes
                assert fm.transform.table and fm.transform.entity_set and fm.transform.keys, f"{m.name}: {fm.label}"


def test_company_maps_depend_on_legal_entities(catalog: dict[str, TableMap]) -> None:
    for m in catalog.values():
        if m.company is not None:
            assert "legal_entities" in m.depends_on, m.name


def test_bidirectional_maps_map_their_keys_both_ways(catalog: dict[str, TableMap]) -> None:
    for m in catalog.values():
        if m.direction is not Direction.BIDIRECTIONAL:
            continue
        company = m.company.dataverse_lookup if m.company else None
        for key in m.dataverse.keys:
            if key == company:
                continue  # the company block maps the company part of the key
            fm = next(f for f in m.fields if f.dataverse == key)
            assert m.field_direction(fm) is Direction.BIDIRECTIONAL, f"{m.name}: {key}"


def test_every_map_cites_its_sources(catalog: dict[str, TableMap]) -> None:
    for m in catalog.values():
        assert m.notes, m.name
        assert m.finance.name_source.strip(), m.name


def test_actuals_sync_only_rows_not_marked_skip_sync_and_write_back_accounting(
    catalog: dict[str, TableMap],
) -> None:
    actuals = catalog["actuals"]
    assert actuals.dataverse.filter == "msdyn_skipsync eq false"
    back = {f.finance for f in actuals.fields if actuals.field_direction(f) is Direction.FINANCE_TO_DATAVERSE}
    assert {"AmountMST", "ExchangeRate", "Voucher", "SalesTaxAmount"} <= back


def test_estimate_lines_are_split_by_transaction_class(catalog: dict[str, TableMap]) -> None:
    # Expense = 192350001, Material = 192350002 (msdyn_transactionclassification options)
    assert catalog["expense_estimates"].dataverse.filter == "msdyn_transactionclassification eq 192350001"
    assert catalog["material_estimates"].dataverse.filter == "msdyn_transactionclassification eq 192350002"


def test_projects_stage_value_map_follows_the_documented_pairs(catalog: dict[str, TableMap]) -> None:
    status = next(f for f in catalog["projects"].fields if f.dataverse == "statecode")
    assert isinstance(status.transform, ValueMap)
    assert {(p.dataverse, p.finance) for p in status.transform.values} == {(0, "InProcess"), (1, "Completed")}


def test_value_maps_list_the_options_they_cover(catalog: dict[str, TableMap]) -> None:
    for m in catalog.values():
        for fm in m.fields:
            t = fm.transform
            if isinstance(t, ValueMap):
                assert t.dataverse_options or t.finance_options, f"{m.name}: {fm.label}"


def test_the_lead_validator_finds_no_problem() -> None:
    problems = validate_directory(MAPS_DIR)
    assert problems == [], "\n".join(map(str, problems))


def test_the_catalog_compiles_and_maps_a_project_and_an_actual_write_back() -> None:
    from shared.catalog.loader import load_catalog
    from shared.mapping.compiler import compile_catalog

    compiled = compile_catalog(load_catalog(MAPS_DIR))
    assert len(compiled) == 27
    project = {
        "msdyn_projectid": "0b7f", "msdyn_projectnumber": "PRJ-1", "msdyn_subject": "Bridge",
        "msdyn_description": None, "msdyn_customer": {"accountnumber": "C-1"},
        "msdyn_scheduledstart": "2025-01-02T00:00:00Z", "msdyn_finish": None, "statecode": 1,
        "msdyn_company": {"cdm_companycode": "USPM"},
    }
    out = compiled["projects"].to_finance(project)
    assert (out["ProjectID"], out["CustomerAccount"], out["ProjectStatus"]) == ("PRJ-1", "C-1", "Completed")
    # Finance writes back only the accounting result; transaction fields never flow back.
    back = compiled["actuals"].to_dataverse(
        {"ActualId": "a1", "AmountMST": "12.345", "ExchangeRate": "1.1", "Voucher": "V1",
         "SalesTaxAmount": "0", "dataAreaId": "uspm"}
    )
    assert back["msdyn_voucher"] == "V1"
    assert "msdyn_amount" not in back and "msdyn_project" not in back
