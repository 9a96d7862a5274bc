"""Broken catalogs, each with the problem code, file and field the validator must report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.catalog import CatalogError, Code, load_catalog
from shared.catalog.validate import validate_directory

GOOD = Path(__file__).parent / "fixtures" / "good"


def _copy_good(tmp_path: Path) -> Path:
    out = tmp_path / "maps"
    out.mkdir()
    for p in GOOD.iterdir():
        (out / p.name).write_text(p.read_text())
    return out


def _edit(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _field(data: dict[str, Any], dataverse: str) -> dict[str, Any]:
    return next(f for f in data["fields"] if f.get("dataverse") == dataverse)


def _drop_key_field(d: dict[str, Any]) -> None:
    _field(d, "msdyn_projectnumber")["finance"] = "ProjectNumber"  # ProjectID (the key) is now unmapped


def _lookup_unknown(d: dict[str, Any]) -> None:
    _field(d, "msdyn_customer")["transform"]["map"] = "clients"


def _cycle(d: dict[str, Any]) -> None:
    d["depends_on"] = ["legal_entities", "projects"]


def _unknown_value(d: dict[str, Any]) -> None:
    _field(d, "statecode")["transform"]["dataverse_options"] = [0, 1, 2]


def _bad_type(d: dict[str, Any]) -> None:
    d["direction"] = "sideways"


def _unknown_transform(d: dict[str, Any]) -> None:
    _field(d, "msdyn_subject")["transform"] = {"kind": "uppercase"}


def _key_one_way(d: dict[str, Any]) -> None:
    _field(d, "accountnumber")["direction"] = "dataverse_to_finance"


def _lookup_not_dependency(d: dict[str, Any]) -> None:
    d["depends_on"] = ["legal_entities"]


def _ambiguous(d: dict[str, Any]) -> None:
    _field(d, "statecode")["transform"]["values"].append({"dataverse": 1, "finance": "Finished"})


def _company_as_field(d: dict[str, Any]) -> None:
    d["fields"].append({"dataverse": "msdyn_company", "finance": "dataAreaId"})


def _decimal_without_scale(d: dict[str, Any]) -> None:
    _field(d, "msdyn_subject")["transform"] = {"kind": "convert", "to": "decimal"}


def _duplicate_target(d: dict[str, Any]) -> None:
    d["fields"].append({"dataverse": "msdyn_title", "finance": "Name"})


def _default_on_bidirectional(d: dict[str, Any]) -> None:
    _field(d, "name")["default"] = "unknown"


def _constant_without_side(d: dict[str, Any]) -> None:
    d["fields"].append({"transform": {"kind": "constant", "value": 1}})


def _unknown_dependency(d: dict[str, Any]) -> None:
    d["depends_on"].append("ledgers")


def _extra_property(d: dict[str, Any]) -> None:
    d["colour"] = "blue"


def _reference(**transform: Any) -> Callable[[dict[str, Any]], None]:
    """The customer lookup of projects rewritten as a reference lookup (to Dataverse accounts)."""
    def change(d: dict[str, Any]) -> None:
        _field(d, "msdyn_customer")["transform"] = {"kind": "lookup", **transform}
    return change


ACCOUNT = {"table": "account", "entity_set": "accounts"}
REFERENCE_CASES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("reference lookup that also names a map", _reference(map="customers", **ACCOUNT,
                                                          keys={"accountnumber": "CustomerAccount"})),
    ("reference lookup without its entity set", _reference(table="account", keys={"accountnumber": "CustomerAccount"})),
    ("reference lookup without key columns", _reference(**ACCOUNT)),
    ("reference company key listed again", _reference(
        **ACCOUNT, keys={"accountnumber": "CustomerAccount", "msdyn_company": "dataAreaId"}, company="msdyn_company")),
    ("reference fixed value flowing to Finance", _reference(**ACCOUNT, values={"accountnumber": "C-1"})),
]

CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], Code, str | None]] = [
    ("missing key field", "projects", _drop_key_field, Code.KEY_NOT_MAPPED, "ProjectID"),
    ("lookup to unknown map", "projects", _lookup_unknown, Code.LOOKUP_UNKNOWN_MAP, "msdyn_customer <-> CustomerAccount"),
    # the cycle is reported where it closes: projects -> customers -> projects
    ("dependency cycle", "customers", _cycle, Code.DEPENDENCY_CYCLE, "depends_on"),
    ("option not covered", "projects", _unknown_value, Code.VALUE_NOT_COVERED, "statecode <-> ProjectStage"),
    ("bad enum value", "projects", _bad_type, Code.SCHEMA, "direction"),
    ("unknown transform", "projects", _unknown_transform, Code.SCHEMA, "fields[1](msdyn_subject).transform"),
    ("key not bidirectional", "customers", _key_one_way, Code.KEY_NOT_BIDIRECTIONAL, "accountnumber <-> CustomerAccount"),
    ("lookup missing from depends_on", "projects", _lookup_not_dependency, Code.LOOKUP_NOT_A_DEPENDENCY,
     "msdyn_customer <-> CustomerAccount"),
    ("ambiguous value map", "projects", _ambiguous, Code.VALUE_AMBIGUOUS, "statecode <-> ProjectStage"),
    ("company mapped as a field", "projects", _company_as_field, Code.COMPANY_AS_FIELD, "msdyn_company <-> dataAreaId"),
    ("decimal without scale", "projects", _decimal_without_scale, Code.CONVERT_SCALE, "msdyn_subject <-> Name"),
    ("two fields write one column", "projects", _duplicate_target, Code.DUPLICATE_TARGET, "msdyn_title <-> Name"),
    ("default on a bidirectional field", "customers", _default_on_bidirectional, Code.DEFAULT_BIDIRECTIONAL,
     "name <-> OrganizationName"),
    ("constant naming no column", "projects", _constant_without_side, Code.SCHEMA, "fields[7]"),
    ("unknown dependency", "projects", _unknown_dependency, Code.DEPENDENCY_UNKNOWN_MAP, "depends_on"),
    ("unknown property", "projects", _extra_property, Code.SCHEMA, "colour"),
    *[(name, "projects", change, Code.REFERENCE_LOOKUP, "msdyn_customer <-> CustomerAccount")
      for name, change in REFERENCE_CASES],
]


@pytest.mark.parametrize(("case", "file", "change", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_broken_catalog_reports_code_file_and_field(tmp_path, case, file, change, code, field):
    maps = _copy_good(tmp_path)
    _edit(maps, file, change)
    problems = validate_directory(maps)
    assert [p.code for p in problems] == [code], [str(p) for p in problems]
    problem = problems[0]
    expected_file = "projects.yaml" if code is Code.DEPENDENCY_CYCLE else f"{file}.yaml"
    assert problem.file == expected_file
    assert problem.field == field
    with pytest.raises(CatalogError) as info:
        load_catalog(maps)
    assert code.value in str(info.value)


def test_the_good_fixture_is_clean():
    assert validate_directory(GOOD) == []
    assert len(load_catalog(GOOD)) == 3


def test_duplicate_name_and_file_name(tmp_path):
    maps = _copy_good(tmp_path)
    (maps / "projects_copy.yaml").write_text((maps / "projects.yaml").read_text())
    codes = sorted(p.code.value for p in validate_directory(maps))
    assert codes == [Code.DUPLICATE_NAME.value, Code.FILE_NAME.value]


def test_unreadable_yaml(tmp_path):
    maps = _copy_good(tmp_path)
    (maps / "broken.yaml").write_text("name: [unclosed\n")
    problems = validate_directory(maps)
    assert [(p.code, p.file) for p in problems] == [(Code.UNREADABLE, "broken.yaml")]


def test_metadata_names_checked(tmp_path):
    maps = _copy_good(tmp_path)
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "finance.xml").write_text(_csdl("Microsoft.Dynamics.DataEntities", {
        "LegalEntities": ["LegalEntityId", "Name"],
        "CustomersV3": ["dataAreaId", "CustomerAccount", "OrganizationName", "CreditLimit"],
    }))
    problems = validate_directory(maps, meta)
    found = {(p.code, p.file, p.field) for p in problems}
    assert (Code.METADATA_UNKNOWN_TABLE, "projects.yaml", None) in found
    assert (Code.METADATA_UNKNOWN_FIELD, "customers.yaml", "msdyn_onhold <-> IsOnHold") in found
    assert len(problems) == 2


def _csdl(namespace: str, sets: dict[str, list[str]]) -> str:
    types = "".join(
        f'<EntityType Name="{name}">' + "".join(f'<Property Name="{c}" Type="Edm.String"/>' for c in cols)
        + "</EntityType>" for name, cols in sets.items()
    )
    container = "".join(f'<EntitySet Name="{n}" EntityType="{namespace}.{n}"/>' for n in sets)
    return (
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0"><edmx:DataServices>'
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{namespace}">{types}'
        f'<EntityContainer Name="c">{container}</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>'
    )


def test_cli_validate_exits_non_zero_listing_problems(tmp_path):
    maps = _copy_good(tmp_path)
    _edit(maps, "projects", _lookup_unknown)
    _edit(maps, "customers", _key_one_way)
    run = subprocess.run([sys.executable, "-m", "cli", "maps", "validate", "--json", "--maps-dir", str(maps)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    problems = json.loads(run.stdout)
    assert {(p["code"], p["file"]) for p in problems} == {("DS210", "projects.yaml"), ("DS201", "customers.yaml")}


def test_a_reference_lookup_is_valid_without_a_map_and_checked_against_dataverse_metadata(tmp_path):
    maps = _copy_good(tmp_path)
    _edit(maps, "projects", _reference(**ACCOUNT, keys={"accountnumber": "CustomerAccount"}, company="msdyn_company",
                                       label="customer account"))
    assert validate_directory(maps) == []  # no map writes accounts for it: no dependency needed
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "dataverse.xml").write_text(_csdl("Microsoft.Dynamics.CRM", {
        "msdyn_projects": ["msdyn_projectnumber", "msdyn_company", "msdyn_subject", "msdyn_title", "statecode",
                           "msdyn_customer", "msdyn_description", "msdyn_scheduledstart"],
        "accounts": ["accountnumber", "name"],  # no msdyn_company: the company key cannot be bound
    }))
    found = {(p.code, p.file, p.field) for p in validate_directory(maps, meta)
             if p.file == "projects.yaml" and p.field == "msdyn_customer <-> CustomerAccount"}
    assert found == {(Code.METADATA_UNKNOWN_FIELD, "projects.yaml", "msdyn_customer <-> CustomerAccount")}
    (meta / "dataverse.xml").write_text(_csdl("Microsoft.Dynamics.CRM", {"msdyn_projects": ["msdyn_customer"]}))
    assert any(p.code is Code.METADATA_UNKNOWN_TABLE and p.field == "msdyn_customer <-> CustomerAccount"
               and "accounts" in p.message for p in validate_directory(maps, meta))
