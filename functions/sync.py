"""One Service Bus topic-subscription trigger per catalog map, and one per map's dead-letter queue.

Generated from the catalog: subscription = map name on the change topic, sessions on (one session per
record, so a record's changes are handled in order). The functions only hand the message to the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import azure.functions as func

from shared.runtime import get_runtime
from shared.sync.factory import get_service
from shared.sync.service import Delivery

CONNECTION = "ServiceBusConnection"
TOPIC = "%DUALSYNC_CHANGE_TOPIC%"
DEAD_LETTER_QUEUE = "$DeadLetterQueue"

bp = func.Blueprint()


def _delivery(msg: func.ServiceBusMessage) -> Delivery:
    return Delivery(body=msg.get_body(), message_id=msg.message_id, session_id=msg.session_id,
                    delivery_count=msg.delivery_count or 1)


def sync_function(map_name: str) -> Callable[[func.ServiceBusMessage], Awaitable[None]]:
    async def sync(msg: func.ServiceBusMessage) -> None:
        service = await get_service()
        await service.process(map_name, _delivery(msg))

    sync.__name__ = f"sync_{map_name}"
    return sync


def dead_letter_function(map_name: str) -> Callable[[func.ServiceBusMessage], Awaitable[None]]:
    async def dead_letter(msg: func.ServiceBusMessage) -> None:
        service = await get_service()
        props = msg.user_properties or {}
        await service.record_dead_letter(map_name, _delivery(msg), props.get("DeadLetterReason"),
                                         props.get("DeadLetterErrorDescription"))

    dead_letter.__name__ = f"deadletter_{map_name}"
    return dead_letter


for _name in get_runtime().catalog.maps:
    bp.function_name(f"sync_{_name}")(
        bp.service_bus_topic_trigger(arg_name="msg", topic_name=TOPIC, subscription_name=_name,
                                     connection=CONNECTION, is_sessions_enabled=True)(sync_function(_name)))
    bp.function_name(f"deadletter_{_name}")(
        bp.service_bus_topic_trigger(arg_name="msg", topic_name=TOPIC,
                                     subscription_name=f"{_name}/{DEAD_LETTER_QUEUE}",
                                     connection=CONNECTION)(dead_letter_function(_name)))
