"""``$metadata``: the schema as CSDL XML (OData 4.0), namespace Microsoft.Dynamics.DataEntities.

Finance publishes dates as Edm.DateTimeOffset and amounts as Edm.Decimal; enums as EnumType members.
Each entity type carries ``Key``; mandatory fields are ``Nullable="false"``.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from sandbox.finance.schema import Schema

EDM = {"String": "Edm.String", "Int": "Edm.Int32", "Int64": "Edm.Int64", "Real": "Edm.Decimal",
       "Date": "Edm.DateTimeOffset", "DateTime": "Edm.DateTimeOffset"}



def metadata_xml(schema: Schema) -> bytes:
    ns = schema.namespace
    out: list[str] = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        f'<Schema Namespace={quoteattr(ns)} xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for name, members in schema.enums.items():
        out.append(f"<EnumType Name={quoteattr(name)}>")
        out.extend(f"<Member Name={quoteattr(m)} Value=\"{i}\" />" for i, m in enumerate(members))
        out.append("</EnumType>")
    for ent in schema.entities.values():
        out.append(f"<EntityType Name={quoteattr(ent.name)}>")
        out.append("<Key>" + "".join(f"<PropertyRef Name={quoteattr(k)} />" for k in ent.key) + "</Key>")
        for f in ent.fields.values():
            edm = f"{ns}.{f.enum}" if f.type == "Enum" else EDM[f.type]
            attrs = f"Name={quoteattr(f.name)} Type={quoteattr(edm)}"
            if f.mandatory or f.name in ent.key:
                attrs += ' Nullable="false"'
            if f.type == "String" and f.length:
                attrs += f' MaxLength="{f.length}"'
            if f.type == "Real":
                attrs += ' Precision="32" Scale="6"'
            out.append(f"<Property {attrs} />")
        out.append("</EntityType>")
    out.append('<EntityContainer Name="Resources">')
    out.extend(f"<EntitySet Name={quoteattr(e.entity_set)} EntityType={quoteattr(f'{ns}.{e.name}')} />"
               for e in schema.entities.values())
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "\n".join(out).encode()
