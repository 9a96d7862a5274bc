"""JSON Schema of a map file, for editors (``dualsync maps schema``)."""

from __future__ import annotations

from typing import Any

from shared.catalog.models import TableMap


def map_file_schema() -> dict[str, Any]:
    schema = TableMap.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/dualsync/dualsync/maps/map.schema.json"
    schema["title"] = "dualsync table map"
    return schema
