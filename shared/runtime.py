"""What one process loads once: settings, the catalog and its compiled maps."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shared.catalog import Catalog, load_catalog
from shared.mapping import CompiledMap, compile_catalog
from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    catalog: Catalog
    compiled: dict[str, CompiledMap]


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """Load settings and catalog once per process; raises SettingsError / CatalogError naming problems."""
    settings = get_settings()
    catalog = load_catalog(settings.maps_dir)
    return Runtime(settings=settings, catalog=catalog, compiled=compile_catalog(catalog))
