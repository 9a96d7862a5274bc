"""What one pull of one map on one side did (logged, returned to callers and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.catalog.models import Side


class PullMode(StrEnum):
    BASELINE = "baseline"  # first run: take the current position only, publish nothing
    INCREMENTAL = "incremental"  # changes since the checkpoint
    FULL_REREAD = "full-reread"  # the Dataverse delta token expired: every row is announced again


@dataclass(frozen=True)
class PullResult:
    map: str
    side: Side
    mode: PullMode
    published: int
    pages: int
    complete: bool  # False when the budget ran out; the next run resumes from the checkpoint
    skipped: int = 0  # Finance rows whose integration key could not be formed
