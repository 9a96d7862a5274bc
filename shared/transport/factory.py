"""Pick the transport the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Transport

if TYPE_CHECKING:
    from shared.settings import Settings


def create_transport(
    settings: Settings,
    *,
    servicebus_connection: str | None = None,
    servicebus_namespace: str | None = None,
) -> Transport:
    """The configured transport.

    Local: a :class:`LocalBrokerTransport` on ``broker_path`` (entities are created by whoever sets
    up the sandbox). Service Bus: from a connection string, or a fully qualified namespace with the
    managed identity. Settings carry no Service Bus connection yet, so the caller passes it.
    """
    from shared.settings import TransportKind

    if settings.transport is TransportKind.LOCAL:
        from .local import LocalBroker, LocalBrokerTransport

        return LocalBrokerTransport(LocalBroker(settings.broker_path))

    from .servicebus import ServiceBusTransport

    topics = [settings.change_topic]
    if servicebus_connection:
        return ServiceBusTransport.from_connection_string(servicebus_connection, topics=topics)
    if servicebus_namespace:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(**settings.azure_credential_kwargs())
        return ServiceBusTransport.from_namespace(servicebus_namespace, credential, topics=topics)
    raise ValueError("DUALSYNC_TRANSPORT=servicebus needs a Service Bus connection string or namespace")

