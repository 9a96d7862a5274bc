"""The emulator's table definitions, loaded from ``schema.yaml`` (see the comment at its top)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = Path(__file__).with_name("schema.yaml")
NAMESPACE = "Microsoft.Dynamics.CRM"

_SPEC = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<arg>[^)]*)\)|\[(?P<opts>[^\]]*)\])?(?P<req>!)?$")
_TYPES = {"string", "memo", "int", "decimal", "money", "bool", "datetime", "dateonly", "guid", "picklist", "lookup"}
# Edm types as Dataverse publishes them in $metadata.
EDM_TYPES = {"string": "Edm.String", "memo": "Edm.String", "int": "Edm.Int32", "decimal": "Edm.Decimal",
             "money": "Edm.Decimal", "bool": "Edm.Boolean", "datetime": "Edm.DateTimeOffset",
             "dateonly": "Edm.Date", "guid": "Edm.Guid", "picklist": "Edm.Int32", "lookup": "Edm.Guid",
             "bigint": "Edm.Int64"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    max_length: int | None = None
    required: bool = False
    options: tuple[int, ...] = ()
    target: str | None = None  # lookup target table (logical name)
    read_only: bool = False

    @property
    def is_lookup(self) -> bool:
        return self.type == "lookup"

    @property
    def value_name(self) -> str:
        """The name clients read and filter on: ``_<name>_value`` for lookups."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column]
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_value_name: dict[str, Column] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_value_name = {c.value_name: c for c in self.columns.values()}

    @property
    def type_name(self) -> str:
        return f"{NAMESPACE}.{self.logical_name}"

    def lookups(self) -> list[Column]:
        return [c for c in self.columns.values() if c.is_lookup]


@dataclass
class Schema:
    tables: dict[str, Table]  # by logical name
    by_set: dict[str, Table]

    def table_for_set(self, entity_set: str) -> Table | None:
        return self.by_set.get(entity_set)


def _column(name: str, spec: str) -> Column:
    m = _SPEC.match(spec.strip())
    if m is None or m["type"] not in _TYPES:
        raise ValueError(f"schema: column {name!r} has a bad spec {spec!r}")
    kind, arg, opts = m["type"], m["arg"], m["opts"]
    return Column(
        name=name, type=kind, required=bool(m["req"]),
        max_length=int(arg) if arg and kind in ("string", "memo") else None,
        target=arg if kind == "lookup" else None,
        options=tuple(int(o) for o in opts.split(",")) if opts else (),
    )


def parse_schema(data: dict[str, Any]) -> Schema:
    tables: dict[str, Table] = {}
    for logical, spec in data["tables"].items():
        pid = spec["primary_id"]
        cols: dict[str, Column] = {pid: Column(pid, "guid")}
        for name, cspec in (spec.get("columns") or {}).items():
            cols[name] = _column(name, str(cspec))
        cols.setdefault("statecode", Column("statecode", "picklist", options=(0, 1)))
        cols.setdefault("statuscode", Column("statuscode", "picklist", options=(1, 2)))
        for auto in ("createdon", "modifiedon"):
            cols[auto] = Column(auto, "datetime", read_only=True)
        cols["versionnumber"] = Column("versionnumber", "bigint", read_only=True)
        keys = {k: tuple(v) for k, v in (spec.get("keys") or {}).items()}
        for kname, kcols in keys.items():
            missing = [c for c in kcols if c not in cols]
            if missing:
                raise ValueError(f"schema: key {kname!r} of {logical!r} names unknown columns {missing}")
        tables[logical] = Table(logical, spec["entity_set"], pid, spec["primary_name"], cols, keys)
    for t in tables.values():
        for c in t.lookups():
            if c.target not in tables:
                raise ValueError(f"schema: lookup {t.logical_name}.{c.name} targets unknown table {c.target!r}")
    return Schema(tables, {t.entity_set: t for t in tables.values()})


@cache
def load_schema(path: Path = SCHEMA_FILE) -> Schema:
    return parse_schema(yaml.safe_load(path.read_text(encoding="utf-8")))
