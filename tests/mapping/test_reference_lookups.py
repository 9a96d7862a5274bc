"""Reference lookups (a Dataverse row no map writes, found by its alternate key): golden rows in both
directions, fixed key values bound (never pasted into the generated source), read expansion, and the
engine against the plain reference interpreter of test_catalog_maps on generated rows."""

from __future__ import annotations

import random
from typing import Any

from shared.catalog.models import Side, TableMap
from shared.mapping import MappingError, compile_map
from tests.mapping.test_catalog_maps import reference_map

EVIL = "'); import os; os.system('echo hacked') #"


def _map(direction: str, transform: dict[str, Any], required: bool = False) -> TableMap:
    return TableMap.model_validate({
        "name": "lines", "title": "Lines", "version": "1.0", "area": "vendor_invoices",
        "description": "vendor invoice lines for the test", "direction": direction,
        "dataverse": {"table": "line", "entity_set": "lines", "primary_id": "lineid", "keys": ["number"]},
        "finance": {"entity": "Line", "entity_set": "Lines", "keys": ["Number"], "name_source": "test"},
        "company": {"dataverse_lookup": "msdyn_owningcompany"},
        "fields": [
            {"dataverse": "number", "finance": "Number", "required": True},
            {"dataverse": "msdyn_unit", "finance": "Unit", "required": required,
             "transform": {"kind": "lookup", **transform}},
        ],
    })


UNIT = {"table": "uom", "entity_set": "uoms", "keys": {"name": "Unit"}, "label": "unit of measure"}
ACCOUNT = {"table": "account", "entity_set": "accounts", "keys": {"accountnumber": "Unit"},
           "values": {"customertypecode": EVIL}, "company": "msdyn_company"}


def test_finance_to_dataverse_carries_key_fixed_values_and_the_company() -> None:
    cm = compile_map(_map("finance_to_dataverse", ACCOUNT))
    row = cm.to_dataverse({"dataAreaId": "uspm", "Number": "L-1", "Unit": "V-22"})
    assert row["msdyn_unit"] == {"accountnumber": "V-22", "customertypecode": EVIL,
                                 "msdyn_company": {"cdm_companycode": "USPM"}}
    assert EVIL not in cm.sources[Side.DATAVERSE]  # the fixed value is bound, not pasted
    assert cm.references["msdyn_unit"].all_key_columns == ("accountnumber", "customertypecode", "msdyn_company")
    assert cm.lookups == {}  # not a map lookup: nothing waits for it as a parent


def test_an_empty_finance_field_is_no_reference_unless_required() -> None:
    assert compile_map(_map("finance_to_dataverse", UNIT)).to_dataverse(
        {"dataAreaId": "uspm", "Number": "L-1", "Unit": ""})["msdyn_unit"] is None
    try:
        compile_map(_map("finance_to_dataverse", UNIT, required=True)).to_dataverse(
            {"dataAreaId": "uspm", "Number": "L-1", "Unit": None})
    except MappingError as exc:
        assert (exc.key, exc.field, exc.reason) == ('["USPM","L-1"]', "msdyn_unit <-> Unit", "a reference is required")
    else:
        raise AssertionError("a required reference accepted an empty value")


def test_only_fixed_values_always_point_somewhere() -> None:
    cm = compile_map(_map("finance_to_dataverse", {"table": "uom", "entity_set": "uoms", "values": {"name": "Each"}}))
    assert cm.to_dataverse({"dataAreaId": "uspm", "Number": "L-1"})["msdyn_unit"] == {"name": "Each"}


def test_dataverse_to_finance_reads_the_expanded_key() -> None:
    cm = compile_map(_map("dataverse_to_finance", UNIT))
    assert "msdyn_unit($select=name)" in cm.dataverse_expand()
    assert "msdyn_unit" not in cm.dataverse_select()  # a navigation property is expanded, never selected
    base = {"msdyn_owningcompany": {"cdm_companycode": "USPM"}, "number": "L-1"}
    assert cm.to_finance({**base, "msdyn_unit": {"name": "Box"}})["Unit"] == "Box"
    assert cm.to_finance({**base, "msdyn_unit": None})["Unit"] is None


def test_engine_agrees_with_the_reference_interpreter() -> None:
    rng = random.Random("reference-lookups")
    for direction, transform in (("finance_to_dataverse", ACCOUNT), ("finance_to_dataverse", UNIT),
                                 ("dataverse_to_finance", UNIT)):
        m = _map(direction, transform)
        cm = compile_map(m)
        target = Side.DATAVERSE if direction == "finance_to_dataverse" else Side.FINANCE
        for i in range(40):
            value = "" if i % 4 == 0 else f"ref-{rng.randint(0, 99)}"
            if target is Side.DATAVERSE:
                row: dict[str, Any] = {"dataAreaId": rng.choice(["uspm", "gbpm"]), "Number": f"L-{i}", "Unit": value}
            else:
                row = {"msdyn_owningcompany": {"cdm_companycode": "USPM"}, "number": f"L-{i}",
                       "msdyn_unit": None if not value else {"name": value}}
            assert cm.to_side(target)(row) == reference_map(m, row, target), (direction, row)
