"""A small CSDL (OData 4.0 ``$metadata``) XML writer for the emulators."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"


@dataclass
class EdmProperty:
    name: str
    type: str  # "Edm.String", ...
    nullable: bool = True
    max_length: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)  # term -> string value


@dataclass
class EdmNavigation:
    name: str
    type: str  # qualified target type
    partner: str | None = None
    referential: tuple[str, str] | None = None  # (property, referenced property)


@dataclass
class EdmEntityType:
    name: str
    key: list[str]
    properties: list[EdmProperty]
    navigations: list[EdmNavigation] = field(default_factory=list)
    alternate_keys: dict[str, list[str]] = field(default_factory=dict)
    entity_set: str = ""


def write_csdl(namespace: str, types: list[EdmEntityType], container: str = "System",
               alias: str | None = None, actions: list[ET.Element] | None = None) -> bytes:
    ET.register_namespace("edmx", EDMX_NS)
    root = ET.Element(f"{{{EDMX_NS}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{EDMX_NS}}}DataServices")
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM_NS, "Namespace": namespace,
                                                **({"Alias": alias} if alias else {})})
    for t in types:
        et = ET.SubElement(schema, "EntityType", {"Name": t.name})
        key = ET.SubElement(et, "Key")
        for k in t.key:
            ET.SubElement(key, "PropertyRef", {"Name": k})
        for p in t.properties:
            attrs = {"Name": p.name, "Type": p.type}
            if not p.nullable:
                attrs["Nullable"] = "false"
            if p.max_length is not None:
                attrs["MaxLength"] = str(p.max_length)
            pe = ET.SubElement(et, "Property", attrs)
            for term, value in p.annotations.items():
                ET.SubElement(pe, "Annotation", {"Term": term, "String": value})
        for n in t.navigations:
            attrs = {"Name": n.name, "Type": n.type}
            if n.partner:
                attrs["Partner"] = n.partner
            ne = ET.SubElement(et, "NavigationProperty", attrs)
            if n.referential:
                ET.SubElement(ne, "ReferentialConstraint", {"Property": n.referential[0],
                                                            "ReferencedProperty": n.referential[1]})
        if t.alternate_keys:
            # OData Core vocabulary "AlternateKeys", as Dataverse publishes it.
            ann = ET.SubElement(et, "Annotation", {"Term": "OData.Community.Keys.V1.AlternateKeys"})
            coll = ET.SubElement(ann, "Collection")
            for kname, cols in t.alternate_keys.items():
                rec = ET.SubElement(coll, "Record", {"Type": "OData.Community.Keys.V1.AlternateKey"})
                pv = ET.SubElement(rec, "PropertyValue", {"Property": "Key"})
                kc = ET.SubElement(pv, "Collection")
                for col in cols:
                    r = ET.SubElement(kc, "Record", {"Type": "OData.Community.Keys.V1.PropertyRef"})
                    ET.SubElement(r, "PropertyValue", {"Property": "Alias", "String": col})
                    ET.SubElement(r, "PropertyValue", {"Property": "Name", "PropertyPath": col})
                ET.SubElement(rec, "PropertyValue", {"Property": "Name", "String": kname})
    for action in actions or []:
        schema.append(action)
    ec = ET.SubElement(schema, "EntityContainer", {"Name": container})
    for t in types:
        if t.entity_set:
            es = ET.SubElement(ec, "EntitySet", {"Name": t.entity_set, "EntityType": f"{namespace}.{t.name}"})
            for n in t.navigations:
                target_set = next((x.entity_set for x in types if f"{namespace}.{x.name}" == n.type), None)
                if target_set:
                    ET.SubElement(es, "NavigationPropertyBinding", {"Path": n.name, "Target": target_set})
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
