import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qs, unquote
from uuid import UUID

import pytest

from shared.connectors.odata import EnumValue, entity_path, filter_expr, key_segment, literal, query_string

GUID = UUID("5e2c7f0a-1b2c-4d3e-8f90-a1b2c3d4e5f6")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        (GUID, str(GUID)),
        (True, "true"),
        (None, "null"),
        (42, "42"),
        (Decimal("12.50"), "12.50"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-01-02T01:04:05Z"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (EnumValue("Microsoft.Dynamics.DataEntities.NoYes", "Yes"), "Microsoft.Dynamics.DataEntities.NoYes'Yes'"),
    ],
)
def test_literal(value, expected):
    assert literal(value) == expected


def test_naive_datetime_refused():
    with pytest.raises(ValueError):
        literal(dt.datetime(2024, 1, 1))


def test_key_segment_guid_and_composite():
    assert key_segment(GUID) == f"({GUID})"
    assert key_segment(str(GUID)) == f"({GUID})"
    assert key_segment({"dataAreaId": "usmf", "ProjectId": "P-1"}) == "(dataAreaId='usmf',ProjectId='P-1')"
    with pytest.raises(ValueError):
        key_segment("not-a-guid")


@pytest.mark.parametrize("value", ["a/b", "50%", "x#y", "q?r", "a&b", "a+b", "Zürich €", "sp ace"])
def test_key_segment_percent_encodes_url_syntax(value):
    seg = key_segment({"name": value})
    for ch in "/#?&+ ":
        assert ch not in seg[1:-1].replace("name=", "")
    assert unquote(seg) == "(name=" + literal(value) + ")"


def test_injection_stays_a_string():
    evil = "x') or ('1'='1"
    seg = key_segment({"msdyn_name": evil})
    decoded = unquote(seg)
    # The value's quotes are doubled: the decoded segment is exactly one string literal.
    assert decoded == "(msdyn_name='x'') or (''1''=''1')"
    assert filter_expr("msdyn_name eq {}", evil) == "msdyn_name eq 'x'') or (''1''=''1'"


def test_query_string_round_trips_through_a_url_parser():
    f = filter_expr("a eq {} and b eq {}", "x&y=1#", "50% off")
    qs = query_string({"$select": "a,b", "$filter": f, "$top": None})
    assert "#" not in qs and " " not in qs
    parsed = parse_qs(qs)
    assert parsed["$filter"] == [f]
    assert parsed["$select"] == ["a,b"]
    assert "$top" not in parsed


def test_entity_path():
    assert entity_path("msdyn_actuals", GUID) == f"msdyn_actuals({GUID})"
