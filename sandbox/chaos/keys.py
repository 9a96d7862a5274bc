"""No target row twice: count every map's rows on both sides by the map's integration key."""

from __future__ import annotations

from collections import Counter
from typing import Any

from shared.catalog.models import Catalog


def _dataverse_value(row: dict[str, Any], column: str) -> Any:
    # a lookup key column is stored as its _<column>_value
    return row[column] if column in row else row.get(f"_{column}_value")


def duplicated_keys(catalog: Catalog, env: Any) -> dict[str, int]:
    """``"map/side" -> rows beyond the first`` for every key held by more than one row (empty when none)."""
    found: dict[str, int] = {}
    for m in catalog:
        dv = Counter(tuple(_dataverse_value(r, k) for k in m.dataverse.keys) for r in env.dv.rows(m.dataverse.entity_set))
        fo = Counter(tuple(r.get(k) for k in (*m.finance.keys, "dataAreaId")) for r in env.fo.rows(m.finance.entity_set))
        for side, counts in (("dataverse", dv), ("finance", fo)):
            extra = sum(n - 1 for n in counts.values() if n > 1)
            if extra:
                found[f"{m.name}/{side}"] = extra
    return found
