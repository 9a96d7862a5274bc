"""The process-wide sync service, built once from settings (lazily, inside the event loop)."""

from __future__ import annotations

import asyncio

from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.runtime import get_runtime
from shared.state.factory import create_state_store
from shared.sync.decisions import Policy
from shared.sync.handler import SyncHandler
from shared.sync.service import SyncService
from shared.sync.sides import DataverseSide, FinanceSide, SideAdapter
from shared.transport.factory import create_transport

_service: SyncService | None = None
_lock = asyncio.Lock()


def reset_service() -> None:
    """Forget the built service (for tests and tools that host the app again with other settings in one
    process); its connections are not closed here, they belong to the event loop that made them."""
    global _service, _lock
    _service = None
    _lock = asyncio.Lock()


async def get_service() -> SyncService:
    global _service
    if _service is not None:
        return _service
    async with _lock:
        if _service is None:
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
            _service = SyncService(SyncHandler(runtime.compiled, sides, state, policy), state, transport,
                                   settings.change_topic)
    return _service
