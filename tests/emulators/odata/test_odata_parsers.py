"""The shared OData parsers: literals, key segments, $filter (Python and SQLite agree), query options."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sandbox.odata import (
    EnumLiteral,
    ODataSyntaxError,
    Property,
    SqlColumn,
    evaluate,
    format_literal,
    parse_entity_ref,
    parse_expand,
    parse_filter,
    parse_literal,
    parse_orderby,
    parse_segment,
    parse_select,
    parse_top,
    properties,
    to_sql,
)

G = "0d3a5c1e-7f2b-4c3d-9e8f-0a1b2c3d4e5f"


@pytest.mark.parametrize(("text", "value"), [
    ("'abc'", "abc"), ("'O''Neil'", "O'Neil"), ("''", ""), ("42", 42), ("-7", -7), ("1.50", Decimal("1.50")),
    ("2.5M", Decimal("2.5")), ("10L", 10), ("true", True), ("false", False), ("null", None),
    (G, uuid.UUID(G)), ("2024-01-31", date(2024, 1, 31)),
    ("2024-01-31T10:00:00Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
    ("2024-01-31T12:00:00+02:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
    ("Microsoft.Dynamics.DataEntities.NoYes'Yes'", EnumLiteral("Microsoft.Dynamics.DataEntities.NoYes", "Yes")),
])
def test_literals_parse_and_round_trip(text: str, value: object) -> None:
    assert parse_literal(text) == value
    assert parse_literal(format_literal(value)) == value


@pytest.mark.parametrize("bad", ["'open", "abc", "1 2", "", "2024-13-45"])
def test_bad_literals_raise(bad: str) -> None:
    with pytest.raises(ODataSyntaxError):
        parse_literal(bad)


def test_key_segments() -> None:
    name, key = parse_segment(f"accounts({G})")
    assert name == "accounts" and key is not None and key.is_single and key.single == uuid.UUID(G)
    name, key = parse_segment(f"msdyn_actuals(msdyn_name='A,(1)',_msdyn_company_value={G})")
    assert name == "msdyn_actuals" and key is not None and not key.is_single
    assert key.values == {"msdyn_name": "A,(1)", "_msdyn_company_value": uuid.UUID(G)}
    assert parse_segment("accounts") == ("accounts", None)
    ref = parse_entity_ref(f"https://org.crm.dynamics.com/api/data/v9.2/accounts({G})", "/api/data/v9.2")
    assert ref.entity_set == "accounts" and ref.key.single == uuid.UUID(G)
    assert parse_entity_ref("/cdm_companies(cdm_companycode='USPM')").key.values == {"cdm_companycode": "USPM"}


@pytest.mark.parametrize("bad", ["accounts(", "accounts(a=)", "accounts(a='1',)", "accounts(a='1' b='2')",
                                 "accounts(a='1',a='2')", "accounts()", "accounts(x y)"])
def test_bad_key_segments_raise(bad: str) -> None:
    with pytest.raises(ODataSyntaxError):
        parse_segment(bad)


ROWS = [
    {"id": 1, "name": "Alpha", "qty": 5, "price": 1.5, "on": "2024-01-01T00:00:00Z", "ok": 1, "ref": G},
    {"id": 2, "name": "beta", "qty": 10, "price": None, "on": "2024-06-01T00:00:00Z", "ok": 0, "ref": None},
    {"id": 3, "name": "O'Gamma", "qty": None, "price": 3.0, "on": None, "ok": 1, "ref": None},
    {"id": 4, "name": None, "qty": 7, "price": 0.0, "on": "2023-12-31T23:59:59Z", "ok": 0, "ref": G},
]

FILTERS = {
    "name eq 'alpha'": [1],
    "name ne 'alpha'": [2, 3, 4],
    "qty gt 5": [2, 4],
    "qty ge 5 and qty le 7": [1, 4],
    "qty lt 6 or name eq null": [1, 4],
    "not (qty gt 5)": [1, 3],
    "price eq null": [2],
    "price ne null and price lt 2": [1, 4],
    "contains(name, 'ET')": [2],
    "startswith(name,'o''g')": [3],
    "endswith(name,'HA')": [1],
    "on ge 2024-01-01T00:00:00Z": [1, 2],
    "on lt 2024-01-01": [4],
    f"ref eq {G}": [1, 4],
    "ok eq true": [1, 3],
    "5 lt qty": [2, 4],
    "(name eq 'beta' or name eq 'O''Gamma') and not (qty eq null)": [2],
    "qty eq 1.5 or price eq 1.5": [1],
}


def _coerce(a: object, b: object) -> tuple[object, object]:
    if isinstance(b, datetime) and isinstance(a, str):
        return datetime.fromisoformat(a.replace("Z", "+00:00")), b
    if isinstance(b, date) and not isinstance(b, datetime) and isinstance(a, str):
        return a[:10], b.isoformat()
    if isinstance(b, uuid.UUID):
        return uuid.UUID(str(a)), b
    if isinstance(b, bool):
        return bool(a), b
    if isinstance(b, Decimal):
        return Decimal(str(a)), b
    return a, b


def _convert(value: object) -> object:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value) if isinstance(value, uuid.UUID) else float(value)
    if isinstance(value, bool):
        return int(value)
    return value


@pytest.mark.parametrize(("text", "expected"), sorted(FILTERS.items()))
def test_filter_python_and_sql_agree(text: str, expected: list[int]) -> None:
    node = parse_filter(text)
    assert [r["id"] for r in ROWS if evaluate(node, r, _coerce)] == expected
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER, name TEXT COLLATE NOCASE, qty INTEGER, price REAL, "
               "on_ TEXT, ok INTEGER, ref TEXT COLLATE NOCASE)")
    db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?)", [tuple(r.values()) for r in ROWS])

    def column(p: Property) -> SqlColumn:
        return SqlColumn({"on": "on_"}.get(p.name, p.name), _convert)

    sql, params = to_sql(node, column)
    got = [r[0] for r in db.execute(f"SELECT id FROM t WHERE {sql} ORDER BY id", params)]
    assert got == expected


def test_filter_lists_properties() -> None:
    assert [p.name for p in properties(parse_filter("a eq 1 and (contains(b,'x') or not c/d eq null)"))] == \
        ["a", "b", "c/d"]


@pytest.mark.parametrize("bad", ["", "name eq", "name eq 'x' and", "(name eq 'x'", "name eq 'x')",
                                 "foo(name, 'x')", "name eq 'x' 'y'", "name # 1", "eq eq 1",
                                 "contains(name)"])
def test_bad_filters_raise(bad: str) -> None:
    with pytest.raises(ODataSyntaxError):
        parse_filter(bad)


def test_query_options() -> None:
    assert parse_select("a, b") == ["a", "b"]
    assert [(o.name, o.descending) for o in parse_orderby("a desc, b asc,c")] == \
        [("a", True), ("b", False), ("c", False)]
    exp = parse_expand("msdyn_project($select=msdyn_subject,msdyn_projectid),ownerid")
    assert [(e.navigation, e.select) for e in exp] == \
        [("msdyn_project", ["msdyn_subject", "msdyn_projectid"]), ("ownerid", None)]
    assert parse_top("10") == 10
    for bad in (lambda: parse_top("-1"), lambda: parse_orderby("a sideways"), lambda: parse_expand("a($select"),
                lambda: parse_select("a,,b")):
        with pytest.raises(ODataSyntaxError):
            bad()
