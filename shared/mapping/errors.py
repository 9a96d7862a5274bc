"""Errors of the mapping engine."""

from __future__ import annotations

from typing import Any

MAX_VALUE_REPR = 200


class MappingError(Exception):
    """A row could not be mapped. Names the map, the record's integration key, the field and value."""

    def __init__(self, map_name: str, key: str | None, field: str, value: Any, reason: str):
        self.map_name = map_name
        self.key = key
        self.field = field
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > MAX_VALUE_REPR:
            shown = shown[:MAX_VALUE_REPR] + "..."
        super().__init__(f"map {map_name!r}, record {key or '?'}: field {field}: {reason} (value {shown})")

    def as_dict(self) -> dict[str, Any]:
        return {"map": self.map_name, "key": self.key, "field": self.field, "reason": self.reason,
                "value": self.value if isinstance(self.value, str | int | float | bool | None) else repr(self.value)}
