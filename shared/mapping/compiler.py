"""Compile a :class:`TableMap` once into plain Python functions, one per direction.

The compiler writes the source of a small function per direction — one straight-line block per field,
no per-row dispatch on transform kinds — and ``exec`` s it with the transforms' tables bound as
constants. Column names are validated identifiers, and every value is bound by name, never pasted
into the source, so a map file cannot inject code.

Row shapes (see :mod:`shared.catalog.models`): the Dataverse side is a *logical row*, lookups in
expanded form ``{"nav": {"keycol": value}}``; the Finance side is the entity's flat fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.catalog.models import (
    Catalog,
    Constant,
    Convert,
    Copy,
    Direction,
    FieldMap,
    Lookup,
    Side,
    TableMap,
    ValueMap,
)
from shared.catalog.validate import lookup_key_columns
from shared.mapping.convert import converters
from shared.mapping.errors import MappingError

Row = dict[str, Any]
RowFunction = Callable[[Row], Row]

COMPANY_KEY_COLUMN = "cdm_companycode"
_MISSING = object()


@dataclass(frozen=True)
class LookupSpec:
    """What the connectors need to read and write one lookup column on Dataverse."""

    navigation: str  # navigation property on this table, e.g. msdyn_project
    map: str  # referenced map
    entity_set: str  # referenced Dataverse entity set
    key_columns: tuple[str, ...]  # referenced alternate key columns carried by the lookup
    company_navigation: str | None  # the referenced table's company lookup, when company-specific
    finance_fields: tuple[str, ...]  # the fields on this Finance entity that hold the reference


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference lookup: a Dataverse row no map writes (a unit, a vendor account), bound by the
    referenced table's alternate key. A miss is permanent (nothing will bring the row)."""

    navigation: str  # navigation property on this table, e.g. msdyn_unit
    table: str  # referenced Dataverse logical name, e.g. uom
    entity_set: str  # referenced Dataverse entity set, e.g. uoms
    primary_id: str  # its primary key column, e.g. uomid
    key_columns: tuple[str, ...]  # alternate key columns filled from this entity's Finance fields
    finance_fields: tuple[str, ...]  # those Finance fields, pairwise
    fixed: tuple[tuple[str, Any], ...] = ()  # alternate key columns with a fixed value
    company_navigation: str | None = None  # the referenced table's company lookup (from this row's company)
    field: str = ""  # the field mapping's label, for messages
    label: str = ""  # what the referenced row is, in users' words (e.g. unit of measure)

    @property
    def expand_columns(self) -> tuple[str, ...]:
        """The key columns a read expands (the company is not expanded, as for map lookups)."""
        return (*self.key_columns, *(k for k, _ in self.fixed))

    @property
    def all_key_columns(self) -> tuple[str, ...]:
        """Every alternate key column, as the error message and the wire key name them."""
        company = (self.company_navigation,) if self.company_navigation else ()
        return (*self.key_columns, *(k for k, _ in self.fixed), *company)


@dataclass
class CompiledMap:
    """A map compiled for one catalog. ``to_finance`` / ``to_dataverse`` map whole rows."""

    map: TableMap
    to_finance: RowFunction
    to_dataverse: RowFunction
    lookups: dict[str, LookupSpec]
    # reference lookups (to Dataverse rows no map writes), by navigation property; never in ``lookups``
    references: dict[str, ReferenceSpec] = field(default_factory=dict)
    sources: dict[Side, str] = field(default_factory=dict)  # generated code, for `maps show --code`
    _key_from: dict[Side, Callable[[Row], tuple[Any, ...]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.map.name

    def to_side(self, target: Side) -> RowFunction:
        return self.to_finance if target is Side.FINANCE else self.to_dataverse

    @property
    def forward(self) -> RowFunction:
        """Towards the map's target (Finance for bidirectional maps)."""
        return self.to_dataverse if self.map.direction is Direction.FINANCE_TO_DATAVERSE else self.to_finance

    @property
    def reverse(self) -> RowFunction:
        return self.to_finance if self.map.direction is Direction.FINANCE_TO_DATAVERSE else self.to_dataverse

    def integration_key(self, side: Side, row: Row) -> tuple[Any, ...]:
        """The record's integration key — the same tuple whichever side the row comes from."""
        return self._key_from[side](row)

    def key_string(self, side: Side, row: Row) -> str:
        return key_to_string(self.integration_key(side, row))

    def key_fields(self, side: Side, key: tuple[Any, ...] | list[Any]) -> Row:
        """The columns that address the record on ``side``, from its integration key.

        Dataverse: the alternate key columns in logical form (the company and lookups as objects).
        Finance: the company field and the natural key fields.
        """
        m = self.map
        values = list(key)
        out: Row = {}
        if m.company is not None:
            code = values.pop(0)
            if side is Side.DATAVERSE:
                out[m.company.dataverse_lookup] = {COMPANY_KEY_COLUMN: code}
            else:
                out[m.company.finance_field] = code.lower() if m.company.finance_case == "lower" else code
        by_dv = {fm.dataverse: fm for fm in m.fields if fm.dataverse}
        company_nav = m.company.dataverse_lookup if m.company else None
        for column, value in zip([k for k in m.dataverse.keys if k != company_nav], values, strict=True):
            fm = by_dv[column]
            t = fm.transform
            if isinstance(t, Lookup):
                spec = self.lookups[column]
                parts = [value] if len(spec.key_columns) == 1 else list(value)
                if side is Side.DATAVERSE:
                    out[column] = dict(zip(spec.key_columns, parts, strict=True))
                else:
                    out.update(zip(spec.finance_fields, parts, strict=True))
            elif side is Side.DATAVERSE:
                out[column] = value
            elif isinstance(t, ValueMap):
                out[fm.finance or ""] = _value_table(t, Side.DATAVERSE).get(_type_tag(value), value)
            elif isinstance(t, Convert):
                out[fm.finance or ""] = converters(t)[Side.FINANCE](value)
            else:
                out[fm.finance or ""] = value
        return out

    def dataverse_select(self) -> list[str]:
        """Columns to ``$select`` when Dataverse is the source (lookups come through ``$expand``)."""
        m = self.map
        cols = {m.dataverse.primary_id, "versionnumber", "modifiedon"}
        for fm in _fields_from(m, Side.DATAVERSE, include_keys=True):
            if fm.dataverse and not isinstance(fm.transform, Lookup | Constant):
                cols.add(fm.dataverse)
        return sorted(cols)

    def dataverse_expand(self) -> list[str]:
        """``$expand`` items that bring the key columns of each lookup (and the company)."""
        items: list[str] = []
        if self.map.company is not None:
            items.append(f"{self.map.company.dataverse_lookup}($select={COMPANY_KEY_COLUMN})")
        wanted = {fm.dataverse for fm in _fields_from(self.map, Side.DATAVERSE, include_keys=True)}
        specs: list[tuple[str, tuple[str, ...]]] = [(n, s.key_columns) for n, s in self.lookups.items()]
        specs += [(n, s.expand_columns) for n, s in self.references.items() if s.expand_columns]
        for nav, columns in sorted(specs):
            if nav in wanted:
                items.append(f"{nav}($select={','.join(columns)})")
        return items

    def finance_select(self) -> list[str]:
        m = self.map
        cols = set(m.finance.keys)
        if m.company is not None:
            cols.add(m.company.finance_field)
        for fm in _fields_from(m, Side.FINANCE, include_keys=True):
            if fm.finance and not isinstance(fm.transform, Constant):
                cols.add(fm.finance)
        return sorted(cols)


def key_to_string(key: tuple[Any, ...]) -> str:
    """A stable text form of an integration key (JSON array) for ledgers, session and message ids."""
    return json.dumps(list(key), separators=(",", ":"), ensure_ascii=False, default=str)


def _fields_from(m: TableMap, source: Side, include_keys: bool) -> list[FieldMap]:
    keys = set(m.dataverse.keys) | set(m.finance.keys)
    out = []
    for fm in m.fields:
        flows = m.field_direction(fm).flows_to(source.other)
        is_key = fm.dataverse in keys or fm.finance in keys
        if flows or (include_keys and is_key):
            out.append(fm)
    return out


class _Writer:
    """Accumulates generated source lines and the constants they refer to."""

    def __init__(self, map_name: str):
        self.lines: list[str] = []
        self.env: dict[str, Any] = {"_MISSING": _MISSING, "MappingError": MappingError, "MAP": map_name}
        self._n = 0

    def const(self, value: Any, prefix: str = "C") -> str:
        self._n += 1
        name = f"{prefix}{self._n}"
        self.env[name] = value
        return name

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)


def _type_tag(v: Any) -> tuple[str, Any]:
    # Value maps must not confuse True with 1 or "1" with 1: key on (kind, value).
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int | float):
        return ("num", float(v))
    if isinstance(v, list | dict):
        # JSON arrays and objects are never in a value table (its keys are scalars) and cannot be
        # hashed: tag them with a key no table holds, so they fail as "value not in the value map"
        return ("unhashable", _MISSING)
    return (type(v).__name__, v)


def _value_table(vm: ValueMap, source: Side) -> dict[tuple[str, Any], Any]:
    table: dict[tuple[str, Any], Any] = {}
    for pair in vm.values:
        src = getattr(pair, source.value)
        table.setdefault(_type_tag(src), getattr(pair, source.other.value))
    return table


def _compile_direction(m: TableMap, catalog: Catalog | None, target: Side, lookups: dict[str, LookupSpec],
                       references: dict[str, ReferenceSpec]) -> tuple[RowFunction, str]:
    source = target.other
    w = _Writer(m.name)
    w.env["_tag"] = _type_tag
    w.lines.append("def map_row(row):")
    w.emit("get = row.get")
    w.emit("out = {}")

    if m.company is not None:
        nav, fo_field = m.company.dataverse_lookup, m.company.finance_field
        if target is Side.FINANCE:
            w.emit(f"c = get({nav!r})")
            w.emit("if not isinstance(c, dict) or not isinstance(c.get('cdm_companycode'), str):")
            w.emit(f"fail(row, {nav!r}, c, 'the company (legal entity) is missing')", 2)
            w.emit(f"out[{fo_field!r}] = c['cdm_companycode'].{m.company.finance_case}()")
        else:
            w.emit(f"c = get({fo_field!r})")
            w.emit("if not isinstance(c, str) or not c:")
            w.emit(f"fail(row, {fo_field!r}, c, 'the company (dataAreaId) is missing')", 2)
            w.emit(f"out[{nav!r}] = {{'cdm_companycode': c.upper()}}")

    for fm in m.fields:
        if not m.field_direction(fm).flows_to(target):
            continue
        _emit_field(w, m, fm, source, target, lookups, references)
    w.emit("return out")

    # The failure helper computes the key lazily: only rows that fail pay for it.
    src = "\n".join(w.lines)
    w.env["fail"] = None  # bound after the key function exists
    code = compile(src, f"<map {m.name} to {target.value}>", "exec")
    exec(code, w.env)
    fn: RowFunction = w.env["map_row"]
    return fn, src


def _emit_field(w: _Writer, m: TableMap, fm: FieldMap, source: Side, target: Side,
                lookups: dict[str, LookupSpec], references: dict[str, ReferenceSpec]) -> None:
    src_col = fm.dataverse if source is Side.DATAVERSE else fm.finance
    dst_col = fm.finance if target is Side.FINANCE else fm.dataverse
    label = fm.label
    t = fm.transform
    assert dst_col is not None  # a field flowing to target names its target column (model rule)

    if isinstance(t, Constant):
        w.emit(f"out[{dst_col!r}] = {w.const(t.value)}")
        return
    if isinstance(t, Lookup) and t.is_reference:
        _emit_lookup(w, m, fm, references[fm.dataverse or ""], source, target)
        return
    if isinstance(t, Lookup):
        _emit_lookup(w, m, fm, lookups[fm.dataverse or ""], source, target)
        return

    w.emit(f"v = get({src_col!r})")
    # null handling: required -> error; default -> target-side value; otherwise null stays null
    if fm.required:
        w.emit("if v is None:")
        w.emit(f"fail(row, {label!r}, None, 'a value is required')", 2)
    elif fm.has_default:
        w.emit("if v is None:")
        w.emit(f"out[{dst_col!r}] = {w.const(fm.default)}", 2)
        w.emit("else:")
    else:
        w.emit("if v is None:")
        w.emit(f"out[{dst_col!r}] = None", 2)
        w.emit("else:")
    indent = 1 if fm.required else 2

    if isinstance(t, Copy):
        w.emit(f"out[{dst_col!r}] = v", indent)
    elif isinstance(t, ValueMap):
        table = w.const(_value_table(t, source), "VM")
        w.emit(f"t = {table}.get(_tag(v), _MISSING)", indent)
        w.emit("if t is _MISSING:", indent)
        w.emit(f"fail(row, {label!r}, v, 'value not in the value map')", indent + 1)
        w.emit(f"out[{dst_col!r}] = t", indent)
    elif isinstance(t, Convert):
        conv = w.const(converters(t)[target], "CV")
        w.emit("try:", indent)
        w.emit(f"out[{dst_col!r}] = {conv}(v)", indent + 1)
        w.emit("except (ValueError, TypeError, ArithmeticError) as e:", indent)
        w.emit(f"fail(row, {label!r}, v, {t.to.value!r} + ' conversion: ' + str(e))", indent + 1)


def _emit_lookup(w: _Writer, m: TableMap, fm: FieldMap, spec: LookupSpec | ReferenceSpec, source: Side,
                 target: Side) -> None:
    nav = spec.navigation
    pairs = list(zip(spec.key_columns, spec.finance_fields, strict=True))
    fixed = spec.fixed if isinstance(spec, ReferenceSpec) else ()
    if target is Side.FINANCE:
        w.emit(f"r = get({nav!r})")
        w.emit("if r is None:")
        if fm.required:
            w.emit(f"fail(row, {fm.label!r}, None, 'a reference is required')", 2)
        else:
            for _, fo in pairs:
                w.emit(f"out[{fo!r}] = None", 2)
        w.emit("elif not isinstance(r, dict):")
        w.emit(f"fail(row, {fm.label!r}, r, 'expected the expanded reference (an object)')", 2)
        w.emit("else:")
        for key_col, fo in pairs:
            w.emit(f"k = r.get({key_col!r}, _MISSING)", 2)
            w.emit("if k is _MISSING:", 2)
            w.emit(f"fail(row, {fm.label!r}, r, 'the reference lacks key column {key_col}')", 3)
            w.emit(f"out[{fo!r}] = k", 2)
    else:
        # Finance holds no null strings: an empty reference field means "no reference".
        w.emit("ks = (" + "".join(f"get({fo!r}), " for _, fo in pairs) + ")")
        # a reference keyed by fixed values only always points somewhere
        w.emit("if ks and all(k is None or k == '' for k in ks):")
        if fm.required:
            w.emit(f"fail(row, {fm.label!r}, None, 'a reference is required')", 2)
        else:
            w.emit(f"out[{nav!r}] = None", 2)
        w.emit("else:")
        body = ", ".join(f"{k!r}: ks[{i}]" for i, (k, _) in enumerate(pairs))
        w.emit(f"ref = {{{body}}}", 2)
        for column, value in fixed:
            w.emit(f"ref[{column!r}] = {w.const(value)}", 2)
        if spec.company_navigation:
            company_field = m.company.finance_field if m.company else "dataAreaId"
            w.emit(f"co = get({company_field!r})", 2)
            w.emit("if isinstance(co, str) and co:", 2)
            w.emit(f"ref[{spec.company_navigation!r}] = {{'cdm_companycode': co.upper()}}", 3)
        w.emit(f"out[{nav!r}] = ref", 2)


def _reference_specs(m: TableMap) -> dict[str, ReferenceSpec]:
    specs: dict[str, ReferenceSpec] = {}
    for fm in m.fields:
        t = fm.transform
        if not isinstance(t, Lookup) or not t.is_reference:
            continue
        if t.table is None or t.entity_set is None:
            raise ValueError(f"map {m.name!r}: reference lookup {fm.label} needs a `table` and its `entity_set`")
        keys = t.keys or {}
        specs[fm.dataverse or ""] = ReferenceSpec(
            navigation=fm.dataverse or "",
            table=t.table,
            entity_set=t.entity_set,
            primary_id=t.primary_id or f"{t.table}id",
            key_columns=tuple(keys),
            finance_fields=tuple(keys.values()),
            fixed=tuple((t.values or {}).items()),
            company_navigation=t.company,
            field=fm.label,
            label=t.label or t.table,
        )
    return specs


def _lookup_specs(m: TableMap, catalog: Catalog | None) -> dict[str, LookupSpec]:
    specs: dict[str, LookupSpec] = {}
    for fm in m.fields:
        t = fm.transform
        if not isinstance(t, Lookup) or t.map is None:
            continue
        if catalog is None or t.map not in catalog:
            raise ValueError(f"map {m.name!r}: lookup {fm.label} needs map {t.map!r} in the catalog")
        ref = catalog[t.map]
        key_cols = lookup_key_columns(ref)
        if t.keys is not None:
            key_cols = [k for k in key_cols if k in t.keys]
            fo_fields = [t.keys[k] for k in key_cols]
        else:
            fo_fields = [fm.finance or ""]
        specs[fm.dataverse or ""] = LookupSpec(
            navigation=fm.dataverse or "",
            map=ref.name,
            entity_set=ref.dataverse.entity_set,
            key_columns=tuple(key_cols),
            company_navigation=ref.company.dataverse_lookup if ref.company else None,
            finance_fields=tuple(fo_fields),
        )
    return specs


def _finance_key_step(fm: FieldMap | None, spec: LookupSpec | None) -> Callable[[Row], Any]:
    """How one Dataverse key column's value is found in a Finance row."""
    if fm is None:
        return lambda row: None
    if isinstance(fm.transform, Lookup) and spec is not None:
        fields = spec.finance_fields
        if len(fields) == 1:
            return lambda row: row.get(fields[0])
        return lambda row: [row.get(x) for x in fields]
    column = fm.finance or ""
    if isinstance(fm.transform, ValueMap):
        table = _value_table(fm.transform, Side.FINANCE)
        return lambda row: table.get(_type_tag(row.get(column)), row.get(column))
    if isinstance(fm.transform, Convert):
        conv = converters(fm.transform)[Side.DATAVERSE]
        return lambda row: None if row.get(column) is None else conv(row.get(column))
    return lambda row: row.get(column)


def _key_functions(m: TableMap, lookups: dict[str, LookupSpec]) -> dict[Side, Callable[[Row], tuple[Any, ...]]]:
    """Integration key extractors. The key is expressed in Dataverse terms on both sides:
    (company code upper case, then each Dataverse key column's value; lookups as tuples)."""
    by_dv = {fm.dataverse: fm for fm in m.fields if fm.dataverse}
    company_nav = m.company.dataverse_lookup if m.company else None
    dv_keys = [k for k in m.dataverse.keys if k != company_nav]

    def from_dataverse(row: Row) -> tuple[Any, ...]:
        parts: list[Any] = []
        if company_nav:
            c = row.get(company_nav)
            parts.append(c.get(COMPANY_KEY_COLUMN) if isinstance(c, dict) else None)
        for k in dv_keys:
            v = row.get(k)
            if isinstance(v, dict) and k in lookups:
                v = tuple(v.get(c) for c in lookups[k].key_columns)
                v = v[0] if len(v) == 1 else list(v)
            parts.append(v)
        return tuple(parts)

    # From Finance: take each key field through its own (key-only) conversion towards Dataverse.
    steps = [_finance_key_step(by_dv.get(k), lookups.get(k)) for k in dv_keys]
    company_field = m.company.finance_field if m.company else None

    def from_finance(row: Row) -> tuple[Any, ...]:
        parts: list[Any] = []
        if company_field:
            c = row.get(company_field)
            parts.append(c.upper() if isinstance(c, str) else c)
        parts.extend(step(row) for step in steps)
        return tuple(parts)

    return {Side.DATAVERSE: from_dataverse, Side.FINANCE: from_finance}


def compile_map(m: TableMap, catalog: Catalog | None = None) -> CompiledMap:
    """Compile one map. ``catalog`` resolves lookups (required when the map has any)."""
    lookups = _lookup_specs(m, catalog)
    references = _reference_specs(m)
    keys = _key_functions(m, lookups)
    functions: dict[Side, RowFunction] = {}
    sources: dict[Side, str] = {}
    for target in (Side.FINANCE, Side.DATAVERSE):
        fn, src = _compile_direction(m, catalog, target, lookups, references)
        source = target.other

        def fail(row: Row, field: str, value: Any, reason: str, _src: Side = source) -> None:
            try:
                key: str | None = key_to_string(keys[_src](row))
            except Exception:  # the key itself may be what is broken
                key = None
            raise MappingError(m.name, key, field, value, reason)

        fn.__globals__["fail"] = fail
        functions[target] = fn
        sources[target] = src
    return CompiledMap(
        map=m,
        to_finance=functions[Side.FINANCE],
        to_dataverse=functions[Side.DATAVERSE],
        lookups=lookups,
        references=references,
        sources=sources,
        _key_from=keys,
    )


def compile_catalog(catalog: Catalog) -> dict[str, CompiledMap]:
    return {m.name: compile_map(m, catalog) for m in catalog}
