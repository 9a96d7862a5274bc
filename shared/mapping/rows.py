"""Helpers over mapped rows."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def row_hash(row: dict[str, Any]) -> str:
    """A stable digest of a mapped row: equal rows hash equal whatever the key order.

    The ledger keeps the hash of the last row written, so a change that maps to the same target row
    (an echo of our own write, or a change to an unmapped column) is skipped.
    """
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
