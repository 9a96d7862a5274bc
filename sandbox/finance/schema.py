"""The Finance entity schema (``schema.yaml``) as typed objects, with the per-value checks the
service does when it deserializes a request body."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = Path(__file__).with_name("schema.yaml")
COMPANY_FIELD = "dataAreaId"
MODIFIED_FIELD = "ModifiedDateTime"
FIELD_TYPES = ("String", "Int", "Int64", "Real", "Date", "DateTime", "Enum")


class BodyValueError(ValueError):
    """A body value that the service's deserializer refuses (wrong type, too long, unknown enum symbol)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    length: int | None = None
    mandatory: bool = False
    enum: str | None = None
    system: bool = False  # maintained by the emulator; ignored when sent


@dataclass(frozen=True)
class Relation:
    """``fields`` maps local field -> target field; the target row must exist when all locals are set."""

    fields: dict[str, str]
    target: str
    company_field: str | None = None


@dataclass
class Entity:
    name: str
    aot_name: str
    entity_set: str
    label: str
    company: bool
    event_category: str
    key: tuple[str, ...]
    fields: dict[str, Field]
    relations: tuple[Relation, ...] = ()
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def data_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if not f.system]

    def business_event_id(self, operation: str) -> str:
        """``<AOT name without Entity><Created|Updated|Deleted>BusinessEvent`` (documented in README)."""
        base = self.aot_name.removesuffix("Entity")
        return f"{base}{ {'Create': 'Created', 'Update': 'Updated', 'Delete': 'Deleted'}[operation]}BusinessEvent"


@dataclass
class Schema:
    namespace: str
    enums: dict[str, tuple[str, ...]]
    entities: dict[str, Entity]  # by entity set

    def entity(self, entity_set: str) -> Entity | None:
        return self.entities.get(entity_set)


def _load(data: dict[str, Any]) -> Schema:
    enums = {k: tuple(v) for k, v in data["enums"].items()}
    entities: dict[str, Entity] = {}
    for raw in data["entities"]:
        company = bool(raw["company"])
        fields: dict[str, Field] = {}
        if company:
            fields[COMPANY_FIELD] = Field(COMPANY_FIELD, "String", 4, mandatory=False)
        for name, spec in raw["fields"].items():
            ftype = spec["type"]
            if ftype not in FIELD_TYPES:
                raise ValueError(f"{raw['entity_set']}.{name}: unknown type {ftype}")
            if ftype == "Enum" and spec.get("enum") not in enums:
                raise ValueError(f"{raw['entity_set']}.{name}: unknown enum {spec.get('enum')}")
            fields[name] = Field(name, ftype, spec.get("length"), bool(spec.get("mandatory")), spec.get("enum"))
        fields[MODIFIED_FIELD] = Field(MODIFIED_FIELD, "DateTime", system=True)
        key = ((COMPANY_FIELD,) if company else ()) + tuple(raw["key"])
        for k in key:
            if k not in fields:
                raise ValueError(f"{raw['entity_set']}: key field {k} is not a field")
        relations = tuple(
            Relation(dict(r["fields"]), r["target"], r.get("company_field")) for r in raw.get("relations", ())
        )
        entities[raw["entity_set"]] = Entity(
            name=raw["name"], aot_name=raw["aot_name"], entity_set=raw["entity_set"], label=raw["label"],
            company=company, event_category=raw["event_category"], key=key, fields=fields, relations=relations,
        )
    for ent in entities.values():
        for rel in ent.relations:
            target = entities.get(rel.target)
            if target is None:
                raise ValueError(f"{ent.entity_set}: relation to unknown entity set {rel.target}")
            for local, remote in rel.fields.items():
                if local not in ent.fields or remote not in target.fields:
                    raise ValueError(f"{ent.entity_set}: relation {local}->{rel.target}.{remote} names a missing field")
    return Schema(data["namespace"], enums, entities)


@cache
def load_schema(path: str | None = None) -> Schema:
    with open(path or SCHEMA_FILE, encoding="utf-8") as fh:
        return _load(yaml.safe_load(fh))


# --- values --------------------------------------------------------------------------------------

def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_body_value(schema: Schema, f: Field, value: Any) -> Any:
    """JSON body value -> stored value (text, int, float, ISO text for dates); raises ``BodyValueError``."""
    if value is None:
        return None
    t = f.type
    if t == "String":
        if not isinstance(value, str):
            raise BodyValueError("Cannot convert a primitive value to the expected type 'Edm.String'.")
        if f.name == COMPANY_FIELD:
            value = value.lower()
        if f.length is not None and len(value) > f.length:
            raise BodyValueError(f"The value for field '{f.name}' is longer than {f.length} characters.")
        return value
    if t in ("Int", "Int64"):
        if isinstance(value, bool) or not isinstance(value, int):
            edm = "Edm.Int32" if t == "Int" else "Edm.Int64"
            raise BodyValueError(f"Cannot convert a primitive value to the expected type '{edm}'.")
        return value
    if t == "Real":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BodyValueError("Cannot convert a primitive value to the expected type 'Edm.Decimal'.")
        try:
            return float(value)
        except ValueError:
            raise BodyValueError("Cannot convert a primitive value to the expected type 'Edm.Decimal'.") from None
    if t == "Enum":
        members = schema.enums[f.enum or ""]
        if isinstance(value, str):
            symbol = value.split("'")[1] if value.endswith("'") and "'" in value[:-1] else value
            for m in members:
                if m.lower() == symbol.lower():
                    return m
        raise BodyValueError(f"The value '{value}' is not a valid enumeration type constant for "
                          f"'{schema.namespace}.{f.enum}'.")
    if t in ("Date", "DateTime"):
        if not isinstance(value, str):
            raise BodyValueError("Cannot convert a primitive value to the expected type 'Edm.DateTimeOffset'.")
        return normalize_datetime_text(value, date_only=(t == "Date"))
    raise BodyValueError(f"unsupported type {t}")  # pragma: no cover - schema load rejects other types


def normalize_datetime_text(text: str, date_only: bool = False) -> str:
    """ISO date or date-time text -> ``YYYY-MM-DDTHH:MM:SSZ`` (F&O shows dates as midnight UTC)."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return f"{d.isoformat()}T00:00:00Z"
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BodyValueError(f"The value '{text}' is not a valid Edm.DateTimeOffset.") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if date_only:
        return f"{dt.astimezone(UTC).date().isoformat()}T00:00:00Z"
    return format_datetime(dt)


def to_json_value(f: Field, stored: Any) -> Any:
    """Stored value -> JSON value (numbers stay numbers; dates are already ISO text)."""
    if stored is None and f.type == "Enum":
        return None
    return stored
