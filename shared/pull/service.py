"""The one entry point the timers call: pull every source side of one map, within a budget."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.mapping import CompiledMap
from shared.process import BuiltOnce
from shared.pull.budget import DEFAULT_MAX_ROWS, DEFAULT_SECONDS, Budget
from shared.pull.dataverse import DataversePuller
from shared.pull.finance import DEFAULT_OVERLAP, FinancePuller
from shared.pull.result import PullResult
from shared.state.base import StateStore
from shared.transport.base import Transport

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger("dualsync.pull")


def pull_sides(cm: CompiledMap) -> tuple[Side, ...]:
    """The sides a map is pulled from: its source sides (a map with none gets no timer)."""
    return cm.map.sources


class PullService:
    def __init__(self, compiled: dict[str, CompiledMap], dataverse: DataversePuller, finance: FinancePuller,
                 *, seconds: float = DEFAULT_SECONDS, max_rows: int = DEFAULT_MAX_ROWS):
        self.compiled = compiled
        self.pullers: dict[Side, DataversePuller | FinancePuller] = {Side.DATAVERSE: dataverse, Side.FINANCE: finance}
        self.seconds = seconds
        self.max_rows = max_rows

    @classmethod
    def create(cls, compiled: dict[str, CompiledMap], dataverse: DataverseConnector, finance: FinanceConnector,
               state: StateStore, transport: Transport, topic: str, *, page_size: int = 5000,
               overlap: timedelta = DEFAULT_OVERLAP, seconds: float = DEFAULT_SECONDS,
               max_rows: int = DEFAULT_MAX_ROWS) -> PullService:
        return cls(
            compiled,
            DataversePuller(dataverse, state, transport, topic, page_size=page_size),
            FinancePuller(finance, state, transport, topic, page_size=page_size, overlap=overlap),
            seconds=seconds, max_rows=max_rows,
        )

    @classmethod
    def from_settings(cls, settings: Settings, compiled: dict[str, CompiledMap], state: StateStore,
                      transport: Transport) -> PullService:
        """Connectors, page size, budget, row cap and Finance overlap as the settings say."""
        return cls.create(
            compiled, DataverseConnector.from_settings(settings), FinanceConnector.from_settings(settings),
            state, transport, settings.change_topic, page_size=settings.page_size,
            overlap=timedelta(seconds=settings.pull_overlap_seconds), seconds=settings.pull_budget_seconds,
            max_rows=settings.pull_max_rows,
        )

    async def pull(self, map_name: str) -> list[PullResult]:
        """Pull each source side of the map in turn, sharing one budget. A failure (the source or the
        broker) propagates after nothing of that page was checkpointed, so the next run repeats it."""
        cm = self.compiled[map_name]
        budget = Budget(self.seconds, self.max_rows)
        results = []
        for side in pull_sides(cm):
            if budget.spent:
                log.info("pull %s: budget spent before %s; it is pulled next run", map_name, side.value)
                break
            result = await self.pullers[side].pull(cm, budget)
            log.info("pull %s %s (%s): %d published in %d pages%s", map_name, side.value, result.mode.value,
                     result.published, result.pages, "" if result.complete else ", to be continued")
            results.append(result)
        return results


async def _build_pull_service() -> PullService:
    from shared.runtime import get_runtime
    from shared.sync.factory import get_service

    runtime = get_runtime()
    sync = await get_service()
    return PullService.from_settings(runtime.settings, runtime.compiled, sync.state, sync.transport)


_service: BuiltOnce[PullService] = BuiltOnce(_build_pull_service)


async def get_pull_service() -> PullService:
    """The process-wide pull service, sharing the sync service's state store and transport."""
    return await _service.get()
