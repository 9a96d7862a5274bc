"""The mapping engine on hostile rows: every map of the catalog, both directions, random types and
values in every column it reads -> a mapped row or a MappingError naming the map and the field."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from shared.catalog import load_catalog
from shared.catalog.models import Side, ValueMap
from shared.mapping import CompiledMap, MappingError, compile_catalog
from shared.settings import DEFAULT_MAPS_DIR
from tests.hostile.requests import HOSTILE, ODATA_INJECTION, UNICODE


@cache
def compiled() -> dict[str, CompiledMap]:
    return compile_catalog(load_catalog(DEFAULT_MAPS_DIR))


def columns(cm: CompiledMap, source: Side) -> list[str]:
    """Every column the map reads from a ``source`` row (lookups and the company as objects)."""
    if source is Side.FINANCE:
        return cm.finance_select()
    navs = [item.split("(", 1)[0] for item in cm.dataverse_expand()]
    return sorted({*cm.dataverse_select(), *navs})


# Cheaper than the request strategies (no kilobyte texts): the engine runs 54 cases here.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63), st.floats(),
                    st.text(max_size=12), st.sampled_from(ODATA_INJECTION + UNICODE))
values = st.one_of(
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=6),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -0.0, 10**400, Decimal("1e999999"), "1e999999", "NaN",
                     "1900-01-01T00:00:00Z", "2024-13-45", "0000-00-00", "Yes", "No", "NoYes'Yes'", b"bytes"]),
    st.dictionaries(st.sampled_from(["cdm_companycode", "msdyn_projectnumber", "msdyn_name", "name"]),
                    scalars, max_size=3),
)


def value_map_columns(cm: CompiledMap, source: Side) -> set[str]:
    m = cm.map
    return {(fm.dataverse if source is Side.DATAVERSE else fm.finance) or "" for fm in m.fields
            if isinstance(fm.transform, ValueMap)}


@st.composite
def rows(draw: st.DrawFn, cols: list[str], hashable: set[str] = frozenset(),  # type: ignore[assignment]
         unhashable: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """A row of some of ``cols``: ``hashable`` columns get scalars only, ``unhashable`` ones lists or objects."""
    kept = draw(st.lists(st.sampled_from(cols), unique=True)) if cols else []
    row = {c: draw(scalars if c in hashable else values) for c in kept}
    for c in unhashable:
        row[c] = draw(st.sampled_from([[], {}, [1], {"Value": 1}]))
    return row


CASES = [pytest.param(name, source, id=f"{name}-from-{source.value}")
         for name in sorted(compiled()) for source in (Side.DATAVERSE, Side.FINANCE)]


@pytest.mark.parametrize(("name", "source"), CASES)
def test_any_row_maps_or_fails_with_a_mapping_error(name, source):
    cm = compiled()[name]
    to_target = cm.to_side(source.other)

    # value-map columns get scalars here; lists and objects there are the known bug below
    @settings(HOSTILE, max_examples=25)
    @given(row=rows(columns(cm, source), hashable=value_map_columns(cm, source)))
    def check(row: dict[str, Any]) -> None:
        mapped_or_mapping_error(name, to_target, row)

    check()


def mapped_or_mapping_error(name: str, to_target: Any, row: dict[str, Any]) -> None:
    try:
        out = to_target(row)
    except MappingError as exc:
        assert exc.map_name == name and exc.field, exc
        assert name in str(exc) and exc.field in str(exc)
        exc.as_dict()  # the error store's form must build for any value
    else:
        assert isinstance(out, dict)


VALUE_MAPPED = [(name, source) for name, cm in sorted(compiled().items()) for source in (Side.DATAVERSE, Side.FINANCE)
                if value_map_columns(cm, source) & set(columns(cm, source))]


# Found by this suite: a value-map field given a list or an object raised TypeError (unhashable) instead
# of MappingError; the engine now tags such values so they fail as "value not in the value map".
def test_a_value_map_field_given_a_list_or_an_object_fails_with_a_mapping_error():
    assert VALUE_MAPPED

    # one error rather than a group of them, should it come back
    @settings(HOSTILE, max_examples=100, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
    @given(case=st.sampled_from(VALUE_MAPPED), data=st.data())
    def check(case: tuple[str, Side], data: st.DataObject) -> None:
        name, source = case
        cm = compiled()[name]
        targets = value_map_columns(cm, source) & set(columns(cm, source))
        row = data.draw(rows(columns(cm, source), hashable=set(), unhashable={data.draw(st.sampled_from(sorted(targets)))}))
        mapped_or_mapping_error(name, cm.to_side(source.other), row)

    check()
