"""Sorting the error store against the failures a chaos run makes on purpose."""

from __future__ import annotations

import pytest

from sandbox.chaos.driver import Target
from sandbox.chaos.intended import names_too_long, record_of, sort_errors
from shared.catalog.models import Side

GUID = "598a2311-2258-58e8-b13f-564527afa81b"
REASON = ("Validation: finance PATCH /data/ProjCDSProjects(dataAreaId='gbpm',ProjectID='GBPM-P000001') -> 400 "
          "An error has occurred. The value for field 'ProjectName' is longer than 60 characters.")


def _error(key: str = GUID, classification: str = "validation", reason: str = REASON, map_: str = "projects"):
    return {"map": map_, "key": key, "classification": classification, "reason": reason, "occurrences": 3}


def test_a_bad_value_is_intended_by_map_record_classification_and_reason():
    [intended] = names_too_long([Target("projects", Side.DATAVERSE, f"msdyn_projects({GUID.upper()})",
                                        "msdyn_subject", "Office move")])
    other_row = "00000000-0000-4000-8000-000000000001"
    kept = [
        _error(),
        _error(key=other_row),  # same reason, another row: not caused on purpose
        _error(classification="dependency_missing"),  # the right row, another cause
        _error(reason="Validation: ... field 'ProjectContractId' does not exist"),
    ]
    sorted_errors = sort_errors(kept, [intended])
    assert sorted_errors.intended == [kept[0]]
    assert sorted_errors.unintended == kept[1:]
    assert sorted_errors.missing == []
    figures = sorted_errors.figures(detail=2)
    assert (figures["intended"], figures["unintended"], figures["occurrences"]) == (1, 3, 12)
    assert [e["key"] for e in figures["unintended_detail"]] == [other_row, GUID]


def test_an_intended_failure_the_store_does_not_hold_is_missing():
    intended = names_too_long([Target("projects", Side.DATAVERSE, f"msdyn_projects({GUID})", "msdyn_subject", "x")])
    assert sort_errors([], intended).missing == intended


def test_intended_failures_are_made_on_dataverse_rows():
    with pytest.raises(ValueError):
        record_of(Target("projects", Side.FINANCE, "ProjCDSProjects(ProjectID='P-1')", "ProjectName", "x"))
