"""The map catalog's data model: one :class:`TableMap` per file in ``maps/``.

A map joins one Dataverse table to one Finance data entity. Field mappings carry a transform and,
on bidirectional maps, their own direction. The models only check the shape of one map; rules that
span the catalog (lookups to existing maps, cycles, key coverage) live in ``validate.py``.

Vocabulary:
- *integration key*: the fields that identify a row on each side (Dataverse alternate key, Finance
  natural key). Company-specific maps add the company on both sides (see :class:`CompanyStriping`).
- *logical row*: the dict the mapping engine reads and writes. Dataverse lookups appear in their
  expanded form, ``{"msdyn_project": {"msdyn_projectnumber": "P-1"}}`` — the shape the Web API
  returns for ``$expand=msdyn_project($select=msdyn_projectnumber)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | bool | float | Decimal | None
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
MapName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class Side(StrEnum):
    DATAVERSE = "dataverse"
    FINANCE = "finance"

    @property
    def other(self) -> Side:
        return Side.FINANCE if self is Side.DATAVERSE else Side.DATAVERSE


class Direction(StrEnum):
    DATAVERSE_TO_FINANCE = "dataverse_to_finance"
    FINANCE_TO_DATAVERSE = "finance_to_dataverse"
    BIDIRECTIONAL = "bidirectional"

    def flows_to(self, target: Side) -> bool:
        """True if data moves towards ``target`` under this direction."""
        if self is Direction.BIDIRECTIONAL:
            return True
        return (self is Direction.DATAVERSE_TO_FINANCE) == (target is Side.FINANCE)

    @property
    def sources(self) -> tuple[Side, ...]:
        if self is Direction.BIDIRECTIONAL:
            return (Side.DATAVERSE, Side.FINANCE)
        return (Side.DATAVERSE,) if self is Direction.DATAVERSE_TO_FINANCE else (Side.FINANCE,)


class Area(StrEnum):
    PREREQUISITES = "prerequisites"
    SETUP = "setup"
    ESTIMATES_ACTUALS = "estimates_actuals"
    INVOICES = "invoices"
    EXPENSES = "expenses"
    VENDOR_INVOICES = "vendor_invoices"


class DeleteBehaviour(StrEnum):
    PROPAGATE = "propagate"  # a delete on the source deletes the target row
    IGNORE = "ignore"  # deletes are not synced (the target keeps the row)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- transforms -----------------------------------------------------------------------------------


class Copy(_Strict):
    """The value as it is."""

    kind: Literal["copy"] = "copy"


class ValuePair(_Strict):
    dataverse: Scalar
    finance: Scalar


class ValueMap(_Strict):
    """Option set value <-> Finance enum symbol (or any value <-> value).

    Pairs are listed once and read both ways; a value not listed is a mapping error, never a None.
    Several pairs may share a target value only on the side the field never flows towards.
    """

    kind: Literal["value_map"] = "value_map"
    values: list[ValuePair] = Field(min_length=1)
    # Option-set values or enum symbols the source may hold; validation checks coverage of these.
    dataverse_options: list[Scalar] | None = None
    finance_options: list[Scalar] | None = None


class Constant(_Strict):
    """A fixed value written to the target; the field has no source column."""

    kind: Literal["constant"] = "constant"
    value: Scalar


class Lookup(_Strict):
    """A reference to a row of another map (``map``), or to reference data in Dataverse (``table``).

    Map lookup: by that map's integration key. Dataverse side: a single-valued navigation property
    (read expanded, written as ``nav@odata.bind`` with the referenced table's alternate key). Finance
    side: the natural key field(s) of the referenced entity held on this entity. ``keys`` pairs each
    referenced Dataverse key column with the Finance field on this entity that holds it; when omitted,
    the referenced map's single key is paired with this field's ``finance`` name. Company keys of a
    company-specific referenced map are taken from this row's company. A referenced row not there yet
    is a missing parent: the write waits and is retried until the parent arrives.

    Reference lookup (``table`` and ``entity_set``, no ``map``): a Dataverse row no map writes (units
    of measure, vendor accounts), found by its alternate key: ``keys`` pairs key columns with Finance
    fields on this entity, ``values`` gives key columns a fixed value, ``company`` names the referenced
    table's company lookup filled from this row's company. Nothing in dualsync will bring a missing
    row, so a miss is a permanent validation failure that names the table and the value.
    """

    kind: Literal["lookup"] = "lookup"
    map: MapName | None = None
    keys: dict[Identifier, Identifier] | None = None
    table: Identifier | None = Field(None, description="reference lookup: Dataverse logical name, e.g. uom")
    entity_set: Identifier | None = Field(None, description="reference lookup: Web API entity set, e.g. uoms")
    primary_id: Identifier | None = Field(None, description="reference lookup: primary key column (<table>id)")
    values: dict[Identifier, Scalar] | None = Field(None, description="reference lookup: fixed key values")
    company: Identifier | None = Field(None, description="reference lookup: the table's company lookup")
    label: str | None = Field(None, max_length=60,
                              description="reference lookup: what the row is, in users' words (errors name it)")

    @property
    def is_reference(self) -> bool:
        """True for a lookup to reference data (a table), not to another map's rows."""
        return self.map is None


class ConvertType(StrEnum):
    STRING = "string"
    INT = "int"
    DECIMAL = "decimal"  # with ``scale``
    MONEY = "money"  # decimal with ``scale`` (default 2), Dataverse Money <-> Finance real
    BOOL_NOYES = "bool_noyes"  # Dataverse boolean <-> Finance NoYes enum ('Yes' / 'No')
    DATE = "date"  # Dataverse date-only 'YYYY-MM-DD' <-> Finance date 'YYYY-MM-DDT00:00:00Z'
    DATETIME_UTC = "datetime_utc"  # ISO 8601, normalised to UTC with 'Z'
    UPPER_LOWER = "upper_lower"  # Dataverse upper case <-> Finance lower case (company codes)


class Convert(_Strict):
    """A type conversion between the two sides' representations."""

    kind: Literal["convert"] = "convert"
    to: ConvertType
    scale: int | None = Field(None, ge=0, le=10)


Transform = Annotated[Copy | ValueMap | Constant | Lookup | Convert, Field(discriminator="kind")]


# --- fields, tables, the map ----------------------------------------------------------------------


class FieldMap(_Strict):
    """One column on each side and how values move between them."""

    dataverse: Identifier | None = None
    finance: Identifier | None = None
    direction: Direction | None = Field(None, description="defaults to the map's direction")
    transform: Transform = Field(default_factory=Copy)
    default: Scalar = Field(None, description="value written when the source value is null")
    has_default: bool = Field(False, description="set when `default` is given (null is a valid default)")
    required: bool = Field(False, description="the source must hold a non-null value")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _mark_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default" in data and "has_default" not in data:
            data = {**data, "has_default": True}
        return data

    @model_validator(mode="after")
    def _sides(self) -> FieldMap:
        if isinstance(self.transform, Constant):
            if (self.dataverse is None) == (self.finance is None):
                raise ValueError("a constant names exactly one side: the column it writes")
        elif self.dataverse is None or self.finance is None:
            raise ValueError("a field mapping names both a dataverse and a finance column")
        return self

    @property
    def label(self) -> str:
        return f"{self.dataverse or '-'} <-> {self.finance or '-'}"


class DataverseTable(_Strict):
    table: Identifier = Field(description="logical name, e.g. msdyn_project")
    entity_set: Identifier = Field(description="Web API entity set, e.g. msdyn_projects")
    primary_id: Identifier = Field(description="primary key column, e.g. msdyn_projectid")
    keys: list[Identifier] = Field(
        min_length=1, description="alternate key columns (the company lookup is added when striped)"
    )
    filter: str | None = Field(None, description="OData $filter a source row must match")


class FinanceEntity(_Strict):
    entity: Identifier = Field(description="public entity name, e.g. ProjCDSActualsImportEntity")
    entity_set: Identifier = Field(description="OData entity set under /data/")
    keys: list[Identifier] = Field(min_length=1, description="natural key fields, without dataAreaId")
    filter: str | None = Field(None, description="OData $filter a source row must match")
    name_source: str = Field(description="where the entity and field names come from")


class CompanyStriping(_Strict):
    """Company-specific map: the Dataverse company lookup <-> Finance ``dataAreaId``."""

    dataverse_lookup: Identifier = Field(
        "msdyn_company", description="navigation property to cdm_companies"
    )
    finance_field: Identifier = "dataAreaId"
    finance_case: Literal["lower", "upper"] = Field(
        "lower", description="case of the company code on Finance (dataAreaId is lower case)"
    )


class TableMap(_Strict):
    name: MapName
    title: str = Field(description="display name as in the dual-write map list")
    version: str = Field(pattern=r"^\d+(\.\d+){1,3}$")
    area: Area
    description: str = Field(min_length=10, description="role of the map in the business flow")
    direction: Direction
    dataverse: DataverseTable
    finance: FinanceEntity
    company: CompanyStriping | None = Field(None, description="absent: a cross-company (shared) map")
    depends_on: list[MapName] = Field(default_factory=list)
    delete: DeleteBehaviour = DeleteBehaviour.PROPAGATE
    initial_sync: Side | None = Field(None, description="master for initial sync, if required")
    fields: list[FieldMap] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list, description="sources, inferences, caveats")

    def field_direction(self, field: FieldMap) -> Direction:
        return field.direction or self.direction

    def fields_towards(self, target: Side) -> list[FieldMap]:
        """The field mappings whose values flow into ``target``."""
        return [f for f in self.fields if self.field_direction(f).flows_to(target)]

    @property
    def sources(self) -> tuple[Side, ...]:
        return self.direction.sources


@dataclass(frozen=True)
class Catalog:
    """Every map, by name, in a stable (file name) order."""

    maps: dict[str, TableMap]

    def __getitem__(self, name: str) -> TableMap:
        return self.maps[name]

    def __contains__(self, name: object) -> bool:
        return name in self.maps

    def __iter__(self) -> Iterator[TableMap]:
        return iter(self.maps.values())

    def __len__(self) -> int:
        return len(self.maps)

    def by_dataverse_table(self, table: str) -> list[TableMap]:
        return [m for m in self.maps.values() if m.dataverse.table == table]

    def by_finance_entity(self, entity: str) -> list[TableMap]:
        return [m for m in self.maps.values() if entity in (m.finance.entity, m.finance.entity_set)]
