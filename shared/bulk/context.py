"""What bulk work needs: settings, compiled maps, both connectors, both side adapters, the state store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.mapping import CompiledMap
from shared.settings import Settings
from shared.state.base import StateStore
from shared.sync.sides import DataverseSide, FinanceSide

if TYPE_CHECKING:
    from shared.sync.service import SyncService


@dataclass
class BulkContext:
    settings: Settings
    compiled: Mapping[str, CompiledMap]
    dataverse: DataverseConnector
    finance: FinanceConnector
    state: StateStore

    def __post_init__(self) -> None:
        # the live path's adapters: Finance addresses and filters are built the same way
        self.dataverse_side = DataverseSide(self.dataverse, self.compiled)
        self.finance_side = FinanceSide(self.finance, self.compiled)

    @classmethod
    def from_settings(cls, settings: Settings, compiled: Mapping[str, CompiledMap], state: StateStore) -> BulkContext:
        return cls(settings, compiled, DataverseConnector.from_settings(settings),
                   FinanceConnector.from_settings(settings), state)

    @classmethod
    def from_service(cls, service: SyncService, settings: Settings) -> BulkContext:
        """The same connectors and store as the live sync service of this process."""
        sides = service.handler.sides
        dv, fo = sides[Side.DATAVERSE], sides[Side.FINANCE]
        assert isinstance(dv, DataverseSide) and isinstance(fo, FinanceSide)
        return cls(settings, service.handler.compiled, dv.connector, fo.connector, service.state)
