"""Read OData CSDL ``$metadata`` documents: which entity sets exist and which columns each has.

Dataverse's namespace is ``Microsoft.Dynamics.CRM``; Finance's is ``Microsoft.Dynamics.DataEntities``.
A column is a structural property or a navigation property (Dataverse lookups are mapped by theirs).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from shared.catalog.models import Side
from shared.catalog.problems import Code, Problem

DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"
FINANCE_NAMESPACE = "Microsoft.Dynamics.DataEntities"


@dataclass
class ServiceMetadata:
    side: Side
    source: str
    entity_sets: dict[str, set[str]] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_metadata(text: str | bytes, source: str = "<metadata>") -> ServiceMetadata:
    """Parse one CSDL document; raises ValueError when it is not one we understand."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    side: Side | None = None
    types: dict[str, set[str]] = {}
    sets: dict[str, str] = {}
    for schema in (el for el in root.iter() if _local(el.tag) == "Schema"):
        namespace = schema.get("Namespace", "")
        if namespace == DATAVERSE_NAMESPACE:
            side = Side.DATAVERSE
        elif namespace == FINANCE_NAMESPACE:
            side = Side.FINANCE
        for el in schema:
            if _local(el.tag) == "EntityType":
                columns = {
                    p.get("Name", "")
                    for p in el
                    if _local(p.tag) in ("Property", "NavigationProperty")
                }
                types[f"{namespace}.{el.get('Name')}"] = columns
            elif _local(el.tag) == "EntityContainer":
                for es in el:
                    if _local(es.tag) == "EntitySet":
                        sets[es.get("Name", "")] = es.get("EntityType", "")
    if side is None:
        raise ValueError(f"no schema in namespace {DATAVERSE_NAMESPACE} or {FINANCE_NAMESPACE}")
    meta = ServiceMetadata(side=side, source=source)
    for name, type_name in sets.items():
        meta.entity_sets[name] = types.get(type_name, set())
    return meta


def read_metadata_dir(directory: Path) -> tuple[list[ServiceMetadata], list[Problem]]:
    metas: list[ServiceMetadata] = []
    problems: list[Problem] = []
    if not directory.is_dir():
        return [], [Problem(Code.METADATA_UNREADABLE, str(directory), "the metadata folder does not exist")]
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in (".xml", ".csdl", ".edmx"):
            continue
        try:
            metas.append(parse_metadata(path.read_bytes(), path.name))
        except (OSError, ValueError) as exc:
            problems.append(Problem(Code.METADATA_UNREADABLE, path.name, str(exc)))
    if not metas and not problems:
        problems.append(Problem(Code.METADATA_UNREADABLE, str(directory), "no .xml $metadata files found"))
    return metas, problems
