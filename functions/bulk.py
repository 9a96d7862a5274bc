"""Distributed initial sync: one queue-triggered function processes work items (legal entity, key range).

``dualsync initial-sync --distributed`` (or the admin API) publishes the items; every instance of the
app takes items from the queue, so Azure Functions scale-out does the heavy lifting. The function
only hands the message to the engine (:mod:`shared.bulk.distributed`).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.bulk.distributed import process_work_item
from shared.sync.factory import get_service

CONNECTION = "ServiceBusConnection"
WORK_QUEUE = "%DUALSYNC_WORK_QUEUE%"

bp = func.Blueprint()
log = logging.getLogger("dualsync.bulk")


@bp.function_name("initial_sync_work")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection=CONNECTION)
async def initial_sync_work(msg: func.ServiceBusMessage) -> None:
    result = await process_work_item(await get_service(), msg.get_body())
    log.info("initial sync work item %s/%s: %s", result.get("map"), result.get("company") or "*", result["status"])
