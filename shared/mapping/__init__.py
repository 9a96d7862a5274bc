"""The mapping engine: maps compiled once into plain functions, forward and reverse."""

from shared.mapping.compiler import (
    CompiledMap,
    LookupSpec,
    ReferenceSpec,
    compile_catalog,
    compile_map,
    key_to_string,
)
from shared.mapping.errors import MappingError
from shared.mapping.rows import row_hash

__all__ = ["CompiledMap", "LookupSpec", "MappingError", "ReferenceSpec", "compile_catalog", "compile_map",
           "key_to_string", "row_hash"]
