"""The compiled mapping engine on the small fixture catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.mapping import MappingError, compile_catalog, key_to_string, row_hash

FIXTURES = Path(__file__).parent.parent / "catalog" / "fixtures" / "good"
CATALOG = load_catalog(FIXTURES)
COMPILED = compile_catalog(CATALOG)
PROJECTS = COMPILED["projects"]
CUSTOMERS = COMPILED["customers"]


def project_row(**changes):
    row = {
        "msdyn_projectid": "00000000-0000-0000-0000-000000000001",
        "msdyn_company": {"cdm_companycode": "USPM"},
        "msdyn_projectnumber": "P-001",
        "msdyn_subject": "Office move",
        "msdyn_customer": {"accountnumber": "C-100"},
        "statecode": 0,
        "msdyn_scheduledstart": "2026-03-01",
        "msdyn_description": "Move the office",
    }
    row.update(changes)
    return row


def test_project_to_finance_golden():
    assert PROJECTS.to_finance(project_row()) == {
        "dataAreaId": "uspm",
        "ProjectID": "P-001",
        "Name": "Office move",
        "CustomerAccount": "C-100",
        "ProjectStage": "InProcess",
        "StartDate": "2026-03-01T00:00:00Z",
        "Description": "Move the office",
        "ProjectType": "TimeMaterial",
    }


def test_closed_project_maps_to_completed_stage():
    assert PROJECTS.to_finance(project_row(statecode=1))["ProjectStage"] == "Completed"


def test_null_and_empty_string_stay_distinct():
    assert PROJECTS.to_finance(project_row(msdyn_subject=None))["Name"] is None
    assert PROJECTS.to_finance(project_row(msdyn_subject=""))["Name"] == ""


def test_default_applies_to_null_only():
    assert PROJECTS.to_finance(project_row(msdyn_description=None))["Description"] == "(none)"
    assert PROJECTS.to_finance(project_row(msdyn_description=""))["Description"] == ""


def test_unknown_value_names_map_key_field_and_value():
    with pytest.raises(MappingError) as info:
        PROJECTS.to_finance(project_row(statecode=2))
    err = info.value
    assert (err.map_name, err.key, err.field, err.value) == (
        "projects", '["USPM","P-001"]', "statecode <-> ProjectStage", 2)
    assert "value not in the value map" in str(err)


@pytest.mark.parametrize("wrong", [True, "0", 0.5])
def test_value_map_does_not_confuse_types(wrong):
    with pytest.raises(MappingError, match="statecode"):
        PROJECTS.to_finance(project_row(statecode=wrong))


def test_required_value_missing():
    with pytest.raises(MappingError) as info:
        PROJECTS.to_finance(project_row(msdyn_projectnumber=None))
    assert info.value.field == "msdyn_projectnumber <-> ProjectID"
    assert info.value.reason == "a value is required"


def test_wrong_type_in_conversion():
    with pytest.raises(MappingError) as info:
        PROJECTS.to_finance(project_row(msdyn_scheduledstart=20260301))
    assert "date conversion" in info.value.reason
    with pytest.raises(MappingError, match="not a date"):
        PROJECTS.to_finance(project_row(msdyn_scheduledstart="2026-02-30"))


def test_missing_company_is_an_error():
    row = project_row()
    del row["msdyn_company"]
    with pytest.raises(MappingError, match="company"):
        PROJECTS.to_finance(row)


def test_lookup_must_be_expanded():
    with pytest.raises(MappingError, match="expanded reference"):
        PROJECTS.to_finance(project_row(msdyn_customer="00000000-0000-0000-0000-000000000002"))
    assert PROJECTS.to_finance(project_row(msdyn_customer=None))["CustomerAccount"] is None


def test_integration_key_is_the_same_from_both_sides():
    row = project_row()
    assert PROJECTS.integration_key(Side.DATAVERSE, row) == ("USPM", "P-001")
    assert PROJECTS.integration_key(Side.FINANCE, PROJECTS.to_finance(row)) == ("USPM", "P-001")
    assert key_to_string(("USPM", "P-001")) == '["USPM","P-001"]'


def test_reader_select_and_expand():
    assert "statecode" in PROJECTS.dataverse_select()
    assert "msdyn_customer" not in PROJECTS.dataverse_select()  # lookups come through $expand
    assert PROJECTS.dataverse_expand() == [
        "msdyn_company($select=cdm_companycode)",
        "msdyn_customer($select=accountnumber)",
    ]


def test_finance_to_dataverse_lookup_carries_the_company():
    fo = {"dataAreaId": "uspm", "CustomerAccount": "C-9", "OrganizationName": "Fabrikam",
          "CreditLimit": 1000, "IsOnHold": "Yes"}
    assert CUSTOMERS.to_dataverse(fo) == {
        "msdyn_company": {"cdm_companycode": "USPM"},
        "accountnumber": "C-9",
        "name": "Fabrikam",
        "msdyn_creditlimit": 1000.0,
        "msdyn_onhold": True,
    }


def test_money_rounds_half_up_to_scale():
    fo = {"dataAreaId": "uspm", "CustomerAccount": "C-9", "OrganizationName": "F",
          "CreditLimit": "10.005", "IsOnHold": "No"}
    assert CUSTOMERS.to_dataverse(fo)["msdyn_creditlimit"] == 10.01


companies = st.sampled_from(["uspm", "gbpm", "depm"])
texts = st.one_of(st.none(), st.text(max_size=30))
amounts = st.one_of(st.none(), st.decimals(min_value=-10**9, max_value=10**9, places=2).map(float))


@given(company=companies, account=st.text(min_size=1, max_size=20), name=texts, limit=amounts,
       hold=st.one_of(st.none(), st.booleans()))
def test_round_trip_bidirectional_fields(company, account, name, limit, hold):
    fo = {"dataAreaId": company, "CustomerAccount": account, "OrganizationName": name,
          "CreditLimit": limit, "IsOnHold": None if hold is None else ("Yes" if hold else "No")}
    assert CUSTOMERS.to_finance(CUSTOMERS.to_dataverse(fo)) == fo
    dv = CUSTOMERS.to_dataverse(fo)
    assert CUSTOMERS.to_dataverse(CUSTOMERS.to_finance(dv)) == dv


def test_row_hash_ignores_key_order():
    assert row_hash({"a": 1, "b": None}) == row_hash({"b": None, "a": 1})
    assert row_hash({"a": ""}) != row_hash({"a": None})


def test_generated_code_binds_values_not_source_text(tmp_path):
    # A constant that looks like code stays a value.
    evil = "'); import os; os.system('echo hacked') #"
    text = (FIXTURES / "projects.yaml").read_text().replace("value: TimeMaterial", f'value: "{evil}"')
    maps = tmp_path / "m"
    maps.mkdir()
    for p in FIXTURES.iterdir():
        (maps / p.name).write_text(text if p.name == "projects.yaml" else p.read_text())
    compiled = compile_catalog(load_catalog(maps))["projects"]
    assert compiled.to_finance(project_row())["ProjectType"] == evil
    assert evil not in compiled.sources[Side.FINANCE]
