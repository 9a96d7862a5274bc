"""Catalog problems: a stable code, the file and field concerned, and what is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Code(StrEnum):
    """Stable problem codes. Tests and users rely on them; never renumber."""

    UNREADABLE = "DS100"  # the file is not valid YAML / JSON
    SCHEMA = "DS101"  # the file does not match the map model
    DUPLICATE_NAME = "DS102"
    FILE_NAME = "DS103"  # maps/<name>.yaml must hold the map called <name>
    KEY_NOT_MAPPED = "DS200"
    KEY_NOT_BIDIRECTIONAL = "DS201"
    KEY_WRONG_DIRECTION = "DS202"
    COMPANY_AS_FIELD = "DS203"  # the company is the `company` block's job, not a field's
    LOOKUP_UNKNOWN_MAP = "DS210"
    DEPENDENCY_UNKNOWN_MAP = "DS211"
    DEPENDENCY_CYCLE = "DS212"
    LOOKUP_NOT_A_DEPENDENCY = "DS213"
    LOOKUP_KEYS = "DS214"
    REFERENCE_LOOKUP = "DS215"  # a lookup to reference data (`table`) that cannot be resolved as written
    VALUE_NOT_COVERED = "DS220"
    VALUE_AMBIGUOUS = "DS221"
    CONSTANT_BIDIRECTIONAL = "DS222"
    CONVERT_SCALE = "DS223"
    DUPLICATE_TARGET = "DS224"
    DEFAULT_BIDIRECTIONAL = "DS225"
    DEFAULT_TYPE = "DS226"
    METADATA_UNKNOWN_TABLE = "DS300"
    METADATA_UNKNOWN_FIELD = "DS301"
    METADATA_UNREADABLE = "DS302"


@dataclass(frozen=True)
class Problem:
    code: Code
    file: str
    message: str
    map: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file + (f" [{self.field}]" if self.field else "")
        return f"{self.code.value} {where}: {self.message}"

    def as_dict(self) -> dict[str, str | None]:
        d = asdict(self)
        d["code"] = self.code.value
        return d


class CatalogError(Exception):
    """The catalog could not be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the map catalog:\n" + "\n".join(map(str, problems)))
