from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import load_settings
from shared.transport import LocalBrokerTransport, Transport, create_transport
from shared.transport.servicebus import ServiceBusTransport

ENVS = {"dataverse_url": "https://org.crm.dynamics.com", "finance_url": "https://fo.operations.dynamics.com"}


async def test_local_by_default(tmp_path: Path) -> None:
    t = create_transport(load_settings(**ENVS, broker_path=tmp_path / "b.sqlite"))
    assert isinstance(t, LocalBrokerTransport) and isinstance(t, Transport)
    assert t.broker.path == tmp_path / "b.sqlite"
    await t.close()


def test_servicebus() -> None:
    settings = load_settings(**ENVS, transport="servicebus", change_topic="topic-x")
    conn = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=Zm9vYmFy"
    t = create_transport(settings, servicebus_connection=conn)
    assert isinstance(t, ServiceBusTransport) and t._topics == frozenset({"topic-x"})
    with pytest.raises(ValueError, match="Service Bus"):
        create_transport(settings)


@pytest.mark.parametrize(("auth", "expected"), [
    ({"auth_mode": "managed_identity", "client_id": "mi-client-id"}, {"managed_identity_client_id": "mi-client-id"}),
    ({"auth_mode": "managed_identity"}, {}),
    ({"auth_mode": "client_secret", "tenant_id": "t", "client_id": "app-id", "client_secret": "s"}, {}),
    ({"auth_mode": "certificate", "tenant_id": "t", "client_id": "app-id", "client_certificate_path": "c.pem"}, {}),
])
def test_servicebus_namespace_credential_per_auth_mode(mocker, auth: dict[str, str], expected: dict[str, str]) -> None:
    credential = mocker.patch("azure.identity.aio.DefaultAzureCredential")
    from_namespace = mocker.patch.object(ServiceBusTransport, "from_namespace")
    settings = load_settings(**ENVS, **auth, transport="servicebus", change_topic="topic-x")
    create_transport(settings, servicebus_namespace="ns.servicebus.windows.net")
    credential.assert_called_once_with(**expected)
    from_namespace.assert_called_once_with("ns.servicebus.windows.net", credential.return_value, topics=["topic-x"])
