"""Catalog-wide rules: keys mapped, lookups and dependencies resolvable, no cycles, value maps
covering their options, and (optionally) every name present in the services' CSDL ``$metadata``.

Every rule reports :class:`Problem` s with a stable code; nothing stops at the first problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from shared.catalog.loader import MapFile
from shared.catalog.metadata import ServiceMetadata
from shared.catalog.models import (
    Constant,
    Convert,
    ConvertType,
    Direction,
    FieldMap,
    Lookup,
    Side,
    TableMap,
    ValueMap,
)
from shared.catalog.problems import Code, Problem

COMPANY_COLUMNS = {"msdyn_company", "_msdyn_company_value", "cdm_company", "dataareaid"}


def validate_files(files: Sequence[MapFile], metadata: Iterable[ServiceMetadata] = ()) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for f in files:
        if f.map.name in seen:
            problems.append(
                Problem(
                    Code.DUPLICATE_NAME,
                    f.path.name,
                    f"map name {f.map.name!r} is already used by {seen[f.map.name]}",
                    map=f.map.name,
                )
            )
        else:
            seen[f.map.name] = f.path.name
    by_name = {f.map.name: f.map for f in files}
    for f in files:
        problems += _check_map(f.path.name, f.map, by_name)
    problems += _check_cycles(files, by_name)
    meta = list(metadata)
    if meta:
        for f in files:
            problems += _check_metadata(f.path.name, f.map, meta)
    return problems


def _p(code: Code, file: str, m: TableMap, message: str, field: str | None = None) -> Problem:
    return Problem(code, file, message, map=m.name, field=field)


def _check_map(file: str, m: TableMap, by_name: dict[str, TableMap]) -> list[Problem]:
    out: list[Problem] = []
    out += _check_keys(file, m)
    targets: dict[tuple[Side, str], str] = {}
    for fm in m.fields:
        direction = m.field_direction(fm)
        label = fm.label
        company_column = next((c for c in (fm.dataverse, fm.finance) if c and c.lower() in COMPANY_COLUMNS), None)
        if company_column and m.company is not None:
            out.append(
                _p(Code.COMPANY_AS_FIELD, file, m,
                   f"{company_column!r} is the company; the map's `company` block maps it, not a field", label)
            )
        if not _direction_allowed(m.direction, direction):
            out.append(
                _p(Code.KEY_WRONG_DIRECTION, file, m,
                   f"field direction {direction.value} is not allowed in a {m.direction.value} map", label)
            )
        for target in (Side.DATAVERSE, Side.FINANCE):
            column = fm.dataverse if target is Side.DATAVERSE else fm.finance
            if column is None or not direction.flows_to(target):
                continue
            if (target, column) in targets:
                out.append(
                    _p(Code.DUPLICATE_TARGET, file, m,
                       f"{target.value} column {column!r} is written by two fields "
                       f"({targets[(target, column)]} and {label})", label)
                )
            targets[(target, column)] = label
        t = fm.transform
        if isinstance(t, Constant) and direction is Direction.BIDIRECTIONAL:
            out.append(_p(Code.CONSTANT_BIDIRECTIONAL, file, m,
                          "a constant has no source column, so it cannot flow both ways", label))
        if fm.has_default and direction is Direction.BIDIRECTIONAL:
            out.append(_p(Code.DEFAULT_BIDIRECTIONAL, file, m,
                          "a default is a target-side value; give bidirectional fields none", label))
        if fm.has_default and isinstance(t, Lookup):
            out.append(_p(Code.DEFAULT_TYPE, file, m, "a lookup cannot have a default", label))
        if isinstance(t, Convert) and t.to is ConvertType.DECIMAL and t.scale is None:
            out.append(_p(Code.CONVERT_SCALE, file, m, "decimal conversion needs a `scale`", label))
        if isinstance(t, ValueMap):
            out += _check_value_map(file, m, fm, t, direction)
        if isinstance(t, Lookup) and (t.map is None or _reference_parts(t)):
            out += _check_reference(file, m, fm, t)
        elif isinstance(t, Lookup):
            out += _check_lookup(file, m, fm, t, by_name)
    for dep in m.depends_on:
        if dep not in by_name:
            out.append(_p(Code.DEPENDENCY_UNKNOWN_MAP, file, m, f"depends_on names unknown map {dep!r}",
                          "depends_on"))
        elif dep == m.name:
            out.append(_p(Code.DEPENDENCY_CYCLE, file, m, "a map cannot depend on itself", "depends_on"))
    return out


def _direction_allowed(map_direction: Direction, field_direction: Direction) -> bool:
    return map_direction is Direction.BIDIRECTIONAL or field_direction is map_direction


def _check_keys(file: str, m: TableMap) -> list[Problem]:
    out: list[Problem] = []
    by_dv = {f.dataverse: f for f in m.fields if f.dataverse}
    by_fo = {f.finance: f for f in m.fields if f.finance}
    checked: set[int] = set()  # a field holding both sides' key is reported once
    for side, keys, index in (
        (Side.DATAVERSE, m.dataverse.keys, by_dv),
        (Side.FINANCE, m.finance.keys, by_fo),
    ):
        for key in keys:
            if side is Side.DATAVERSE and m.company is not None and key == m.company.dataverse_lookup:
                continue  # the company part of the key is mapped by the company block
            fm = index.get(key)
            if fm is None or isinstance(fm.transform, Constant):
                out.append(_p(Code.KEY_NOT_MAPPED, file, m,
                              f"integration key {side.value} column {key!r} has no field mapping", key))
                continue
            if id(fm) in checked:
                continue
            checked.add(id(fm))
            direction = m.field_direction(fm)
            if m.direction is Direction.BIDIRECTIONAL and direction is not Direction.BIDIRECTIONAL:
                out.append(_p(Code.KEY_NOT_BIDIRECTIONAL, file, m,
                              f"integration key column {key!r} must be mapped both ways in a "
                              "bidirectional map", fm.label))
            elif m.direction is not Direction.BIDIRECTIONAL and direction is not m.direction:
                out.append(_p(Code.KEY_WRONG_DIRECTION, file, m,
                              f"integration key column {key!r} must flow {m.direction.value}", fm.label))
    return out


def _as_key(v: object) -> object:
    # bool is an int in Python: keep True and 1 apart when checking value maps
    return (type(v).__name__, str(v)) if isinstance(v, bool) else (
        ("num", str(Decimal(str(v)).normalize())) if isinstance(v, int | float | Decimal) else ("str", v)
    )


def _check_value_map(file: str, m: TableMap, fm: FieldMap, t: ValueMap, direction: Direction) -> list[Problem]:
    out: list[Problem] = []
    for source in direction.sources:
        source_values = [getattr(p, source.value) for p in t.values]
        seen: dict[object, object] = {}
        for pair in t.values:
            value = getattr(pair, source.value)
            target = getattr(pair, source.other.value)
            k = _as_key(value)
            if k in seen and seen[k] != target:
                out.append(_p(Code.VALUE_AMBIGUOUS, file, m,
                              f"{source.value} value {value!r} maps to both {seen[k]!r} and {target!r}",
                              fm.label))
            seen[k] = target
        options = t.dataverse_options if source is Side.DATAVERSE else t.finance_options
        known = {_as_key(v) for v in source_values}
        for option in options or ():
            if _as_key(option) not in known:
                out.append(_p(Code.VALUE_NOT_COVERED, file, m,
                              f"{source.value} option {option!r} has no value-map entry", fm.label))
    return out


def _check_lookup(file: str, m: TableMap, fm: FieldMap, t: Lookup, by_name: dict[str, TableMap]) -> list[Problem]:
    out: list[Problem] = []
    ref = by_name.get(t.map) if t.map is not None else None
    if ref is None or t.map is None:
        return [_p(Code.LOOKUP_UNKNOWN_MAP, file, m, f"lookup to unknown map {t.map!r}", fm.label)]
    if t.map not in m.depends_on and t.map != m.name:
        out.append(_p(Code.LOOKUP_NOT_A_DEPENDENCY, file, m,
                      f"lookup to {t.map!r}, which is missing from depends_on", fm.label))
    ref_keys = lookup_key_columns(ref)
    if t.keys is None:
        if len(ref_keys) != 1:
            out.append(_p(Code.LOOKUP_KEYS, file, m,
                          f"{t.map!r} has key columns {ref_keys}; list them under `keys`", fm.label))
    else:
        missing = [k for k in ref_keys if k not in t.keys]
        extra = [k for k in t.keys if k not in ref_keys]
        if missing or extra:
            out.append(_p(Code.LOOKUP_KEYS, file, m,
                          f"lookup keys must be exactly {ref_keys} of {t.map!r} (missing {missing}, "
                          f"unknown {extra})", fm.label))
    return out


def _reference_parts(t: Lookup) -> list[str]:
    return [k for k in ("table", "entity_set", "primary_id", "values", "company", "label") if getattr(t, k) is not None]


def _check_reference(file: str, m: TableMap, fm: FieldMap, t: Lookup) -> list[Problem]:
    """A reference lookup: a Dataverse table (and entity set) instead of a map, keyed by its own
    alternate key columns, each one filled from a Finance field, a fixed value or the row's company."""
    def bad(message: str) -> Problem:
        return _p(Code.REFERENCE_LOOKUP, file, m, message, fm.label)

    if t.map is not None:
        return [bad(f"a lookup to map {t.map!r} takes none of a reference lookup's {_reference_parts(t)}; "
                    "name either a `map` or a reference `table`")]
    out: list[Problem] = []
    if t.table is None or t.entity_set is None:
        out.append(bad("a lookup names a `map`, or a reference `table` with its `entity_set`"))
    keys, values = t.keys or {}, t.values or {}
    if not keys and not values:
        out.append(bad("a reference lookup needs its table's alternate key columns under `keys` or `values`"))
    both = sorted(set(keys) & set(values))
    if both:
        out.append(bad(f"key columns {both} are given both a Finance field and a fixed value"))
    if t.company is not None:
        if m.company is None:
            out.append(bad(f"company key {t.company!r} needs a company-specific map (this map has no `company`)"))
        if t.company in keys or t.company in values:
            out.append(bad(f"company key {t.company!r} is filled from the row's company; do not list it again"))
    if fm.dataverse in m.dataverse.keys:
        out.append(bad("a reference lookup cannot be part of the integration key"))
    if m.field_direction(fm).flows_to(Side.FINANCE) and values:
        out.append(bad("fixed key values cannot flow to Finance: map the field finance_to_dataverse"))
    return out


def lookup_key_columns(ref: TableMap) -> list[str]:
    """The referenced map's Dataverse key columns a lookup carries (its company comes from the row)."""
    company = ref.company.dataverse_lookup if ref.company else None
    return [k for k in ref.dataverse.keys if k != company]


def _check_cycles(files: Sequence[MapFile], by_name: dict[str, TableMap]) -> list[Problem]:
    out: list[Problem] = []
    state: dict[str, int] = {}  # 0 visiting, 1 done
    reported: set[frozenset[str]] = set()
    file_of = {f.map.name: f.path.name for f in files}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 0
        for dep in by_name[name].depends_on:
            if dep not in by_name or dep == name:
                continue
            if state.get(dep) == 0:
                cycle = [*stack[stack.index(dep):], dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    out.append(Problem(Code.DEPENDENCY_CYCLE, file_of[name],
                                       "dependency cycle: " + " -> ".join(cycle), map=name, field="depends_on"))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 1

    for name in by_name:
        if name not in state:
            visit(name, [name])
    return out


def _check_metadata(file: str, m: TableMap, metadata: list[ServiceMetadata]) -> list[Problem]:
    out: list[Problem] = []
    for side, entity_set in ((Side.DATAVERSE, m.dataverse.entity_set), (Side.FINANCE, m.finance.entity_set)):
        services = [s for s in metadata if s.side is side]
        if not services:
            continue
        columns = next((s.entity_sets[entity_set] for s in services if entity_set in s.entity_sets), None)
        if columns is None:
            out.append(_p(Code.METADATA_UNKNOWN_TABLE, file, m,
                          f"{side.value} entity set {entity_set!r} is not in $metadata"))
            continue
        names: list[tuple[str, str]] = []
        keys = m.dataverse.keys if side is Side.DATAVERSE else m.finance.keys
        names += [(k, "integration key") for k in keys]
        for fm in m.fields:
            column = fm.dataverse if side is Side.DATAVERSE else fm.finance
            if column:
                names.append((column, fm.label))
        if m.company is not None:
            names.append((m.company.dataverse_lookup if side is Side.DATAVERSE else m.company.finance_field,
                          "company"))
        if side is Side.FINANCE:
            names += [(f, fm.label) for fm in m.fields if isinstance(fm.transform, Lookup)
                      and fm.transform.is_reference for f in (fm.transform.keys or {}).values()]
        else:
            out += _check_reference_metadata(file, m, services)
        for column, label in names:
            if column not in columns:
                out.append(_p(Code.METADATA_UNKNOWN_FIELD, file, m,
                              f"{side.value} {entity_set!r} has no column {column!r} in $metadata", label))
    return out


def _check_reference_metadata(file: str, m: TableMap, services: list[ServiceMetadata]) -> list[Problem]:
    """A reference lookup's table and key columns must be in Dataverse's $metadata too."""
    out: list[Problem] = []
    for fm in m.fields:
        t = fm.transform
        if not isinstance(t, Lookup) or not t.is_reference or t.entity_set is None:
            continue
        columns = next((s.entity_sets[t.entity_set] for s in services if t.entity_set in s.entity_sets), None)
        if columns is None:
            out.append(_p(Code.METADATA_UNKNOWN_TABLE, file, m,
                          f"reference entity set {t.entity_set!r} is not in $metadata", fm.label))
            continue
        for column in [*(t.keys or {}), *(t.values or {}), *([t.company] if t.company else [])]:
            if column not in columns:
                out.append(_p(Code.METADATA_UNKNOWN_FIELD, file, m,
                              f"dataverse {t.entity_set!r} has no column {column!r} in $metadata", fm.label))
    return out


def validate_directory(directory: Path, metadata_dir: Path | None = None) -> list[Problem]:
    """Everything ``dualsync maps validate`` checks."""
    from shared.catalog.loader import read_map_files
    from shared.catalog.metadata import read_metadata_dir

    files, problems = read_map_files(directory)
    metadata: list[ServiceMetadata] = []
    if metadata_dir is not None:
        metadata, meta_problems = read_metadata_dir(metadata_dir)
        problems += meta_problems
    return problems + validate_files(files, metadata)
