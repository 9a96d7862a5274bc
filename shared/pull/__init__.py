"""Polling pulls per map: Dataverse change tracking and Finance watermark reads, published as change
notifications so a missed webhook or business event is still caught. See docs/pull.md."""

from shared.pull.budget import Budget
from shared.pull.dataverse import DataversePuller
from shared.pull.finance import FinancePuller
from shared.pull.result import PullMode, PullResult
from shared.pull.service import PullService, get_pull_service, pull_sides

__all__ = [
    "Budget",
    "DataversePuller",
    "FinancePuller",
    "PullMode",
    "PullResult",
    "PullService",
    "get_pull_service",
    "pull_sides",
]
