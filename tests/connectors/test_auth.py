import time

import pytest
from azure.core.credentials import AccessToken

from shared.connectors import auth
from shared.settings import load_settings

ENV = {"dataverse_url": "https://contoso.crm.dynamics.com", "finance_url": "https://contoso.operations.dynamics.com"}


@pytest.fixture(autouse=True)
def _fresh_credentials():
    auth._credentials.clear()
    yield
    auth._credentials.clear()


def fake_credential(mocker, *tokens):
    cred = mocker.AsyncMock()
    cred.get_token.side_effect = [AccessToken(t, int(time.time()) + 3600) for t in tokens]
    return cred


def test_client_secret_credential_and_scopes(mocker):
    cls = mocker.patch.object(auth, "ClientSecretCredential")
    s = load_settings(**ENV, auth_mode="client_secret", tenant_id="tid", client_id="cid", client_secret="s3cr3t")
    dv = auth.token_provider(s, "https://contoso.crm.dynamics.com/")
    fo = auth.token_provider(s, "https://contoso.operations.dynamics.com")
    cls.assert_called_once_with("tid", "cid", "s3cr3t")  # one credential per process, both services
    assert dv.scope == "https://contoso.crm.dynamics.com/.default"
    assert fo.scope == "https://contoso.operations.dynamics.com/.default"


def test_certificate_credential(mocker, tmp_path):
    cls = mocker.patch.object(auth, "CertificateCredential")
    pem = tmp_path / "c.pem"
    s = load_settings(**ENV, auth_mode="certificate", tenant_id="tid", client_id="cid", client_certificate_path=pem)
    auth.token_provider(s, ENV["dataverse_url"])
    cls.assert_called_once_with("tid", "cid", certificate_path=str(pem))


def test_managed_identity_user_assigned_and_system(mocker):
    cls = mocker.patch.object(auth, "ManagedIdentityCredential")
    auth.token_provider(load_settings(**ENV, auth_mode="managed_identity", client_id="uami"), ENV["finance_url"])
    cls.assert_called_with(client_id="uami")
    auth._credentials.clear()
    auth.token_provider(load_settings(**ENV, auth_mode="managed_identity"), ENV["finance_url"])
    cls.assert_called_with()


async def test_static_token_mode():
    s = load_settings(**ENV, auth_mode="static_token", static_token="emu-token")
    p = auth.token_provider(s, ENV["dataverse_url"])
    assert await p.token() == "emu-token"
    assert await p.token(rejected="emu-token") == "emu-token"
    assert "emu-token" not in repr(p)


async def test_entra_tokens_cached_and_refreshed_on_rejection(mocker):
    cred = fake_credential(mocker, "A", "B")
    p = auth.EntraTokens(cred, "https://contoso.crm.dynamics.com")
    assert await p.token() == "A"
    assert await p.token() == "A"  # cached
    assert await p.token(rejected="A") == "B"
    assert await p.token(rejected="A") == "B"  # someone else already refreshed: no second call
    assert cred.get_token.await_count == 2
    for call in cred.get_token.await_args_list:
        assert call.args == ("https://contoso.crm.dynamics.com/.default",)


async def test_entra_tokens_refresh_before_expiry(mocker):
    cred = mocker.AsyncMock()
    now = 1_000_000.0
    cred.get_token.side_effect = [AccessToken("A", int(now) + 200), AccessToken("B", int(now) + 3600)]
    p = auth.EntraTokens(cred, "https://x.operations.dynamics.com/", clock=lambda: now)
    assert await p.token() == "A"
    assert await p.token() == "B"  # A expires within the 5-minute margin
