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


AUTH_MODES = [
    # (settings, the DefaultAzureCredential arguments): the client id is a user-assigned identity only
    # in managed_identity mode; in client_secret/certificate mode it is the app registration's.
    ({"auth_mode": "managed_identity", "client_id": "mi-client-id"}, {"managed_identity_client_id": "mi-client-id"}),
    ({"auth_mode": "managed_identity"}, {}),
    ({"auth_mode": "client_secret", "tenant_id": "t", "client_id": "app-id", "client_secret": "s"}, {}),
    ({"auth_mode": "certificate", "tenant_id": "t", "client_id": "app-id", "client_certificate_path": "c.pem"}, {}),
]


@pytest.mark.parametrize(("auth", "expected"), AUTH_MODES)
def test_table_endpoint_credential_per_auth_mode(mocker, auth: dict[str, str], expected: dict[str, str]) -> None:
    credential = mocker.patch("azure.identity.aio.DefaultAzureCredential")
    from_endpoint = mocker.patch.object(TableStateStore, "from_endpoint")
    settings = load_settings(**ENVS, **auth, state_backend="table",
                             state_table_endpoint="https://acct.table.core.windows.net")
    create_state_store(settings, table_prefix="p")
    credential.assert_called_once_with(**expected)
    from_endpoint.assert_called_once_with("https://acct.table.core.windows.net", credential.return_value, prefix="p")
