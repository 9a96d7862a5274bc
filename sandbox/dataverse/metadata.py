"""``$metadata`` for the emulator's schema, in the shape Dataverse publishes (namespace
``Microsoft.Dynamics.CRM``, alias ``mscrm``; lookups as ``_<name>_value`` Guid properties plus a
single-valued navigation property ``<name>``; alternate keys as ``OData.Community.Keys.V1`` annotations)."""

from __future__ import annotations

from sandbox.dataverse.schema import EDM_TYPES, NAMESPACE, Schema
from sandbox.odata.csdl import EdmEntityType, EdmNavigation, EdmProperty, write_csdl


def entity_types(schema: Schema) -> list[EdmEntityType]:
    types = []
    for t in schema.tables.values():
        props = []
        navs = []
        for col in t.columns.values():
            ann = {"Org.OData.Core.V1.Computed": "true"} if col.read_only else {}
            props.append(EdmProperty(col.value_name, EDM_TYPES[col.type], nullable=col.name != t.primary_id,
                                     max_length=col.max_length, annotations=ann))
            if col.is_lookup:
                target = schema.tables[col.target or ""]
                navs.append(EdmNavigation(col.name, f"{NAMESPACE}.{target.logical_name}",
                                          referential=(col.value_name, target.primary_id)))
        alt = {k: [t.columns[c].value_name for c in cols] for k, cols in t.keys.items()}
        types.append(EdmEntityType(t.logical_name, [t.primary_id], props, navs, alt, t.entity_set))
    return types


def metadata_xml(schema: Schema) -> bytes:
    return write_csdl(NAMESPACE, entity_types(schema), container="System", alias="mscrm")
