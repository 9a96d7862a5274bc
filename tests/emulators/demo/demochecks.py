"""Checks of demo rows against the emulators' own schemas, independent of the generator's code."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sandbox.dataverse.errors import DataverseError
from sandbox.dataverse.schema import load_schema as load_dataverse_schema
from sandbox.dataverse.values import to_storage
from sandbox.demo import DATAVERSE, DemoRow
from sandbox.finance.schema import COMPANY_FIELD, BodyValueError, parse_body_value
from sandbox.finance.schema import load_schema as load_finance_schema

DV = load_dataverse_schema()
FO = load_finance_schema()


def row_problems(item: DemoRow) -> list[str]:
    """What the target emulator's schema refuses in one row (types, lengths, options, mandatory fields)."""
    side, entity_set, row = item
    return _dataverse_problems(entity_set, row) if side == DATAVERSE else _finance_problems(entity_set, row)


def _dataverse_problems(entity_set: str, row: dict[str, Any]) -> list[str]:
    table = DV.table_for_set(entity_set)
    if table is None:
        return [f"{entity_set}: no such Dataverse entity set"]
    problems = []
    seen = set()
    for name, value in row.items():
        col = table.by_value_name.get(name)
        if col is None or col.read_only:
            problems.append(f"{entity_set}.{name}: not a writable column")
            continue
        seen.add(col.name)
        try:
            to_storage(table, col, value)
        except DataverseError as exc:
            problems.append(f"{entity_set}.{name}={value!r}: {exc}")
    if not row.get(table.primary_id):
        problems.append(f"{entity_set}: no primary id")
    for col in table.columns.values():
        if col.required and (col.name not in seen or row.get(col.value_name) in (None, "")):
            problems.append(f"{entity_set}: required column {col.name} missing")
    return problems


def _finance_problems(entity_set: str, row: dict[str, Any]) -> list[str]:
    ent = FO.entity(entity_set)
    if ent is None:
        return [f"{entity_set}: no such Finance entity set"]
    problems = []
    for name, value in row.items():
        f = ent.fields.get(name)
        if f is None or f.system:
            problems.append(f"{entity_set}.{name}: not a writable field")
            continue
        try:
            parse_body_value(FO, f, value)
        except BodyValueError as exc:
            problems.append(f"{entity_set}.{name}={value!r}: {exc}")
    for f in ent.data_fields:
        if (f.mandatory or f.name in ent.key) and row.get(f.name) in (None, ""):
            problems.append(f"{entity_set}: mandatory field {f.name} missing")
    return problems


class References:
    """Feed rows in generation order; collects every reference to a row not generated before it.

    Dataverse: every ``_x_value`` names the primary id of an earlier row of the column's target table
    (and transaction connections name earlier actuals). Finance: every relation the schema declares
    resolves to an earlier Finance row (values compared case-insensitively, as the emulator does)."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = defaultdict(set)  # Dataverse logical name -> ids
        self.finance: dict[tuple[str, tuple[str, ...]], set[tuple[str, ...]]] = defaultdict(set)
        self.problems: list[str] = []
        self.checked = 0
        self._wanted: dict[str, list[tuple[str, ...]]] = defaultdict(list)  # target set -> field tuples
        for ent in FO.entities.values():
            for rel in ent.relations:
                target = FO.entities[rel.target]
                fields = ((COMPANY_FIELD,) if target.company else ()) + tuple(rel.fields.values())
                self._wanted[rel.target].append(fields)

    def feed(self, rows: Iterable[DemoRow]) -> None:
        for item in rows:
            if item.side == DATAVERSE:
                self._dataverse(item.entity_set, item.row)
            else:
                self._finance(item.entity_set, item.row)

    def _dataverse(self, entity_set: str, row: dict[str, Any]) -> None:
        table = DV.table_for_set(entity_set)
        assert table is not None, entity_set
        for name, value in row.items():
            col = table.by_value_name[name]
            if col.is_lookup and value is not None:
                self.checked += 1
                if value not in self.ids[col.target or ""]:
                    self.problems.append(f"{entity_set}.{name} -> {col.target} {value}: not generated before")
        if table.logical_name == "msdyn_transactionconnection":
            for name in ("msdyn_transaction1", "msdyn_transaction2"):
                self.checked += 1
                if row[name] not in self.ids["msdyn_actual"]:
                    self.problems.append(f"{entity_set}.{name} {row[name]}: no such actual before")
        self.ids[table.logical_name].add(row[table.primary_id])

    @staticmethod
    def _norm(value: Any) -> str:
        return str(value).lower()

    def _finance(self, entity_set: str, row: dict[str, Any]) -> None:
        ent = FO.entities[entity_set]
        for rel in ent.relations:
            values = [row.get(local) for local in rel.fields]
            if any(v in (None, "") for v in values):
                continue
            target = FO.entities[rel.target]
            fields: tuple[str, ...] = tuple(rel.fields.values())
            if target.company:
                company = row.get(rel.company_field or COMPANY_FIELD) or row.get(COMPANY_FIELD)
                values = [company, *values]
                fields = (COMPANY_FIELD, *fields)
            self.checked += 1
            if tuple(map(self._norm, values)) not in self.finance[(rel.target, fields)]:
                self.problems.append(f"{entity_set} {dict(zip(rel.fields, values[-len(rel.fields):], strict=True))}"
                                     f" -> {rel.target}: not generated before")
        for fields in self._wanted.get(entity_set, ()):
            self.finance[(entity_set, fields)].add(tuple(self._norm(row.get(f)) for f in fields))
