"""Polling timers per map: Dataverse change tracking and Finance watermark pulls (catch missed events).

One timer per catalog map with a source side, named ``pull_<map>``, on the schedule in the app
setting ``DUALSYNC_PULL_SCHEDULE`` (NCRONTAB, six fields; the host resolves ``%...%``). Not run on
start-up (every restart and scale-out would fire it); the schedule monitor keeps missed runs. The
function only calls the shared puller (shared/pull, docs/pull.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import azure.functions as func

from shared.pull import get_pull_service, pull_sides
from shared.runtime import get_runtime

SCHEDULE = "%DUALSYNC_PULL_SCHEDULE%"

log = logging.getLogger("dualsync.pull")

bp = func.Blueprint()


def pull_function(map_name: str) -> Callable[[func.TimerRequest], Awaitable[None]]:
    async def pull(timer: func.TimerRequest) -> None:
        if timer.past_due:
            log.info("pull %s: the timer is past due; pulling now", map_name)
        service = await get_pull_service()
        await service.pull(map_name)

    pull.__name__ = f"pull_{map_name}"
    return pull


for _name, _compiled in get_runtime().compiled.items():
    if pull_sides(_compiled):
        bp.function_name(f"pull_{_name}")(
            bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=True)(
                pull_function(_name)))
