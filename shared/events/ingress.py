"""Ingress queues: the Dataverse Service Bus service endpoint, and Finance events sent to Service Bus.

Dataverse's endpoint sends the webhook's RemoteExecutionContext, but without a session id (which a
session-enabled subscription would dead-letter), so it lands on a plain queue; Finance business and
data events may do the same. :func:`handle_ingress` runs the HTTP path's parsing and routing on the
message and publishes session-keyed notifications to the change topic.

The message's application properties play the request headers' part: Dataverse puts its claims
(``http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName``, ...) and the
``MessageMaxSizeExceeded`` marker of a stripped context there (apis.md §2). There is no shared
secret (the queue's own SAS or identity is the authentication) and no required content type.

A rejected message (malformed, unknown table or entity) is neither retried nor dropped: it is kept in
the error store with the rejection's reason and its scrubbed payload, and the trigger completes it.
Anything else that fails (state store, transport) raises, so Service Bus delivers the message again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.catalog.models import Catalog
from shared.events.control import ControlNumberTracker
from shared.events.errors import (
    InvalidShape,
    MalformedJson,
    PayloadTooLarge,
    Rejection,
    Unauthorized,
    UnknownEntity,
    UnknownTable,
    UnsupportedMediaType,
    UnsupportedMessage,
)
from shared.events.intake import accept_dataverse, accept_finance, normalise_headers
from shared.events.jsonbody import parse_json
from shared.events.notification import Origin
from shared.events.publish import deliver
from shared.mapping.compiler import CompiledMap
from shared.state.base import StateStore
from shared.state.models import ErrorClassification, ErrorRecord, ErrorReport
from shared.state.scrub import scrub
from shared.transport.base import Transport

log = logging.getLogger("dualsync.ingress")

MAX_KEPT_JSON_BYTES = 256 * 1024  # a larger body is kept as a text head, not as parsed JSON
MAX_KEPT_TEXT_CHARS = 4096

# What an operator does about a rejection: fix the registration or the catalog (mapping), or the
# sender's data (validation), or look at who is sending what (bad-message, auth).
CLASSIFICATIONS: dict[type[Rejection], ErrorClassification] = {
    UnknownTable: ErrorClassification.MAPPING,
    UnknownEntity: ErrorClassification.MAPPING,
    UnsupportedMessage: ErrorClassification.MAPPING,
    InvalidShape: ErrorClassification.VALIDATION,
    MalformedJson: ErrorClassification.BAD_MESSAGE,
    UnsupportedMediaType: ErrorClassification.BAD_MESSAGE,
    PayloadTooLarge: ErrorClassification.BAD_MESSAGE,
    Unauthorized: ErrorClassification.AUTH,
}


class IngressKind(StrEnum):
    DATAVERSE = "dataverse"
    FINANCE = "finance"


@dataclass(frozen=True)
class IngressOutcome:
    """``sent`` notifications published; or why none (``ignored_reason``, or the kept ``error``)."""

    sent: int
    ignored_reason: str | None = None
    error: ErrorRecord | None = None


@dataclass(frozen=True)
class Ingress:
    """What the ingress handler works with; built once per process by the trigger."""

    catalog: Catalog
    compiled: Mapping[str, CompiledMap]
    transport: Transport
    state: StateStore
    topic: str
    queues: Mapping[IngressKind, str]
    max_body_bytes: int


def classify(rejection: Rejection) -> ErrorClassification:
    for cls in type(rejection).__mro__:
        if cls in CLASSIFICATIONS:
            return CLASSIFICATIONS[cls]
    return ErrorClassification.UNKNOWN


def kept_payload(body: bytes, properties: Mapping[str, str]) -> dict[str, Any]:
    """The message as the error store keeps it: the JSON body when it parses (else a text head) and
    the application properties, secrets masked."""
    content: Any
    try:
        if len(body) > MAX_KEPT_JSON_BYTES:
            raise MalformedJson("too large to keep whole")
        content = parse_json(body)
    except MalformedJson:
        content = body[: MAX_KEPT_TEXT_CHARS * 4].decode("utf-8", "replace")[:MAX_KEPT_TEXT_CHARS]
    return scrub({"body": content, "properties": dict(properties), "body_bytes": len(body)})


async def handle_ingress(
    kind: IngressKind,
    body: bytes,
    properties: Mapping[str, object],
    ingress: Ingress,
    *,
    content_type: str | None = None,
    message_id: str | None = None,
    delivery_count: int = 1,
    received_at: datetime | None = None,
) -> IngressOutcome:
    """Parse, route and publish one ingress-queue message (see the module docstring)."""
    headers = normalise_headers(properties)
    if content_type:
        headers["content-type"] = content_type
    accept = accept_dataverse if kind is IngressKind.DATAVERSE else accept_finance
    try:
        result = accept(body, headers, ingress.catalog, ingress.compiled, max_body_bytes=ingress.max_body_bytes,
                        expected_secret=None, origin=Origin.SERVICEBUS_ENDPOINT, received_at=received_at,
                        require_content_type=False)
    except Rejection as rejection:
        record = await _keep(kind, rejection, body, headers, ingress, message_id, delivery_count)
        return IngressOutcome(0, error=record)
    tracker = ControlNumberTracker(ingress.state) if kind is IngressKind.FINANCE else None
    delivered = await deliver(result, ingress.transport, ingress.topic, tracker)
    log.info("ingress %s message %s: %d notification(s)%s", kind.value, message_id, delivered.sent,
             f", {delivered.ignored_reason}" if delivered.ignored_reason else "")
    return IngressOutcome(delivered.sent, delivered.ignored_reason)


async def _keep(kind: IngressKind, rejection: Rejection, body: bytes, headers: Mapping[str, str],
                ingress: Ingress, message_id: str | None, delivery_count: int) -> ErrorRecord:
    queue = ingress.queues[kind]
    record = await ingress.state.record_error(ErrorReport(
        map=queue,  # no map is known for a message that could not be routed; the queue says where it came from
        key=message_id or "?",
        classification=classify(rejection),
        reason=rejection.message,
        description=f"the {kind.value} ingress queue {queue!r} rejected the message ({rejection.code}, "
                    f"HTTP {rejection.status} on the webhook path)" + (f" at {rejection.path}" if rejection.path else ""),
        delivery_count=delivery_count,
        payload=kept_payload(body, headers),
        message_id=message_id,
    ))
    log.error("ingress %s: message %s kept in the error store as %s: %s", kind.value, message_id,
              record.classification, rejection.message)
    return record


async def record_ingress_dead_letter(
    kind: IngressKind,
    body: bytes,
    properties: Mapping[str, object],
    ingress: Ingress,
    *,
    reason: str | None,
    description: str | None,
    message_id: str | None = None,
    delivery_count: int = 0,
) -> ErrorRecord:
    """A message Service Bus dead-lettered on an ingress queue (the handler kept failing, or it
    expired): kept in the error store, so nothing that reached the queue is lost unseen."""
    headers = normalise_headers(properties)
    queue = ingress.queues[kind]
    classification = (ErrorClassification.MAX_DELIVERIES if (reason or "").startswith("MaxDeliveryCount")
                      else ErrorClassification.UNKNOWN)
    record = await ingress.state.record_error(ErrorReport(
        map=queue,
        key=message_id or "?",
        classification=classification,
        reason=reason or "dead-lettered",
        description=description or f"dead-lettered on the {kind.value} ingress queue {queue!r}",
        delivery_count=delivery_count,
        payload=kept_payload(body, {k: v for k, v in headers.items() if not k.startswith("deadletter")}),
        message_id=message_id,
    ))
    log.error("ingress %s: dead-lettered message %s kept in the error store: %s", kind.value, message_id,
              record.reason)
    return record
