"""Ingress queues: Dataverse Service Bus service endpoint and Finance events delivered by Service Bus.

They run the same parsing and routing as the HTTP triggers and publish session-keyed notifications
(``shared.events.ingress``). The queues are not session-enabled: Dataverse sends no session id. A
message the engine rejects is kept in the error store and completed; one whose handling crashes is
redelivered by Service Bus, and its dead letter is kept in the error store by the functions below.
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from shared.events.ingress import Ingress, IngressKind, handle_ingress, record_ingress_dead_letter
from shared.runtime import get_runtime
from shared.sync.factory import get_service

CONNECTION = "ServiceBusConnection"
QUEUES = {
    IngressKind.DATAVERSE: "%DUALSYNC_INGRESS_QUEUE_DATAVERSE%",
    IngressKind.FINANCE: "%DUALSYNC_INGRESS_QUEUE_FINANCE%",
}
DEAD_LETTER_QUEUE = "$DeadLetterQueue"

bp = func.Blueprint()


async def _ingress() -> Ingress:
    runtime = get_runtime()
    settings = runtime.settings
    service = await get_service()
    return Ingress(
        catalog=runtime.catalog, compiled=runtime.compiled, transport=service.transport, state=service.state,
        topic=settings.change_topic, max_body_bytes=settings.max_body_bytes,
        queues={IngressKind.DATAVERSE: settings.ingress_queue_dataverse,
                IngressKind.FINANCE: settings.ingress_queue_finance},
    )


def _properties(msg: func.ServiceBusMessage) -> dict[str, object]:
    # Older Service Bus extensions surface application properties as UserProperties only.
    return {**(msg.user_properties or {}), **(msg.application_properties or {})}


async def _handle(kind: IngressKind, msg: func.ServiceBusMessage) -> None:
    await handle_ingress(kind, msg.get_body(), _properties(msg), await _ingress(),
                         content_type=msg.content_type, message_id=msg.message_id,
                         delivery_count=msg.delivery_count or 1,
                         received_at=_enqueued(msg))


def _enqueued(msg: func.ServiceBusMessage) -> datetime:
    when = msg.enqueued_time_utc
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _dead_letter(kind: IngressKind, msg: func.ServiceBusMessage) -> None:
    props = _properties(msg)
    reason, description = props.get("DeadLetterReason"), props.get("DeadLetterErrorDescription")
    await record_ingress_dead_letter(kind, msg.get_body(), props, await _ingress(),
                                     reason=str(reason) if reason is not None else msg.dead_letter_reason,
                                     description=str(description) if description is not None
                                     else msg.dead_letter_error_description,
                                     message_id=msg.message_id, delivery_count=msg.delivery_count or 0)


@bp.function_name("dataverse_ingress")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUES[IngressKind.DATAVERSE], connection=CONNECTION)
async def dataverse_ingress(msg: func.ServiceBusMessage) -> None:
    await _handle(IngressKind.DATAVERSE, msg)


@bp.function_name("finance_ingress")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUES[IngressKind.FINANCE], connection=CONNECTION)
async def finance_ingress(msg: func.ServiceBusMessage) -> None:
    await _handle(IngressKind.FINANCE, msg)


@bp.function_name("dataverse_ingress_deadletter")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"{QUEUES[IngressKind.DATAVERSE]}/{DEAD_LETTER_QUEUE}",
                              connection=CONNECTION)
async def dataverse_ingress_deadletter(msg: func.ServiceBusMessage) -> None:
    await _dead_letter(IngressKind.DATAVERSE, msg)


@bp.function_name("finance_ingress_deadletter")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"{QUEUES[IngressKind.FINANCE]}/{DEAD_LETTER_QUEUE}",
                              connection=CONNECTION)
async def finance_ingress_deadletter(msg: func.ServiceBusMessage) -> None:
    await _dead_letter(IngressKind.FINANCE, msg)
