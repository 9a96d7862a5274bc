from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import load_settings
from shared.state import SqliteStateStore, StateStore, StateStoreError, create_state_store
from shared.state.table import TableStateStore

ENVS = {"dataverse_url": "https://org.crm.dynamics.com", "finance_url": "https://fo.operations.dynamics.com"}


def test_sqlite_by_default(tmp_path: Path) -> None:
    store = create_state_store(load_settings(**ENVS, state_sqlite_path=tmp_path / "x.sqlite"))
    assert isinstance(store, SqliteStateStore) and isinstance(store, StateStore)
    assert store.path == tmp_path / "x.sqlite"


async def test_table_from_connection_string(azurite_connection_string: str) -> None:
    settings = load_settings(**ENVS, state_backend="table", state_table_connection=azurite_connection_string)
    store = create_state_store(settings, table_prefix="factorytest")
    assert isinstance(store, TableStateStore) and isinstance(store, StateStore)
    await store.open()
    try:
        await store.put_checkpoint("c", {"ok": True})
        assert (await store.get_checkpoint("c")).data == {"ok": True}  # type: ignore[union-attr]
    finally:
        await store.drop_tables()
        await store.close()


def test_table_without_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    with pytest.raises(StateStoreError, match="DUALSYNC_STATE_TABLE_CONNECTION"):
        create_state_store(load_settings(**ENVS, state_backend="table"))
