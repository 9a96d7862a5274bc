"""The process-wide sync service, built once from settings (lazily, inside the event loop)."""

from __future__ import annotations

from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.process import BuiltOnce
from shared.runtime import get_runtime
from shared.state.factory import create_state_store
from shared.sync.decisions import Policy
from shared.sync.handler import SyncHandler
from shared.sync.service import SyncService
from shared.sync.sides import DataverseSide, FinanceSide, SideAdapter
from shared.transport.factory import create_transport


async def _build_service() -> SyncService:
    runtime = get_runtime()
    settings = runtime.settings
    state = create_state_store(settings, table_prefix=settings.state_table_prefix)
    await state.open()
    connection = settings.servicebus_connection.get_secret_value() if settings.servicebus_connection else None
    transport = create_transport(settings, servicebus_connection=connection,
                                 servicebus_namespace=settings.servicebus_namespace)
    sides: dict[Side, SideAdapter] = {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), runtime.compiled),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), runtime.compiled),
    }
    policy = Policy(dependency_attempts=settings.dependency_retry_attempts,
                    base_delay=settings.retry_base_delay_seconds)
    return SyncService(SyncHandler(runtime.compiled, sides, state, policy), state, transport, settings.change_topic)


_service: BuiltOnce[SyncService] = BuiltOnce(_build_service)


async def get_service() -> SyncService:
    return await _service.get()
