"""The map catalog: models, loading, validation, JSON Schema."""

from shared.catalog.loader import load_catalog, read_map_files
from shared.catalog.models import Catalog, Direction, FieldMap, Side, TableMap
from shared.catalog.problems import CatalogError, Code, Problem

__all__ = [
    "Catalog",
    "CatalogError",
    "Code",
    "Direction",
    "FieldMap",
    "Problem",
    "Side",
    "TableMap",
    "load_catalog",
    "read_map_files",
]
