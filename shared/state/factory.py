"""Pick the state store the settings ask for."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .base import StateStore
from .errors import StateStoreError

if TYPE_CHECKING:
    from shared.settings import Settings


def create_state_store(settings: Settings, *, table_prefix: str = "dualsync") -> StateStore:
    """The configured store, not yet opened (call ``await store.open()``).

    Table Storage: ``state_table_connection``, else ``state_table_endpoint`` with the managed identity
    (``DefaultAzureCredential``), else the Functions host's own ``AzureWebJobsStorage`` connection.
    """
    from shared.settings import StateBackend

    if settings.state_backend is StateBackend.SQLITE:
        from .sqlite import SqliteStateStore

        return SqliteStateStore(settings.state_sqlite_path)

    from .table import TableStateStore

    if settings.state_table_connection is not None:
        return TableStateStore.from_connection_string(
            settings.state_table_connection.get_secret_value(), prefix=table_prefix
        )
    if settings.state_table_endpoint:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(**settings.azure_credential_kwargs())
        return TableStateStore.from_endpoint(settings.state_table_endpoint, credential, prefix=table_prefix)
    host_storage = os.environ.get("AzureWebJobsStorage")  # noqa: SIM112 - the host's own name
    if host_storage:
        return TableStateStore.from_connection_string(host_storage, prefix=table_prefix)
    raise StateStoreError(
        "DUALSYNC_STATE_BACKEND=table needs DUALSYNC_STATE_TABLE_CONNECTION, DUALSYNC_STATE_TABLE_ENDPOINT "
        "or AzureWebJobsStorage"
    )

