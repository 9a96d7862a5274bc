"""Timer triggers: NCRONTAB schedules (six fields, seconds first, UTC) or TimeSpan intervals.

One run at a time per timer, as the host's singleton lock does. A run that starts more than a
second after its scheduled time (the previous run overran it) is ``past_due``. Retry policies
(``@app.retry``) re-run a failed timer function, as the host does for timers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import azure.functions.timer as azf_timer
from croniter import croniter

from .discovery import HostedFunction
from .hostconfig import timespan_seconds
from .invoke import invoke
from .stats import TIMER_FAILURES, TIMER_RUNS, HostStats

log = logging.getLogger("dualsync.host")
PAST_DUE_AFTER = timedelta(seconds=1)


class Schedule:
    """Next occurrences of an NCRONTAB expression or a ``hh:mm:ss`` interval, in UTC."""

    def __init__(self, expression: str):
        self.expression = expression.strip()
        self.interval: timedelta | None = None
        if ":" in self.expression and len(self.expression.split()) == 1:
            self.interval = timedelta(seconds=timespan_seconds(self.expression))
            if self.interval <= timedelta(0):
                raise ValueError(f"timer interval must be positive: {expression!r}")
        elif len(self.expression.split()) != 6:
            raise ValueError(f"NCRONTAB takes six fields, seconds first: {expression!r}")
        elif not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ValueError(f"not a valid NCRONTAB expression: {expression!r}")

    def next_after(self, when: datetime) -> datetime:
        if self.interval is not None:
            return when + self.interval
        # NCRONTAB puts seconds first; croniter's default reads a sixth field as seconds *last*
        nxt = croniter(self.expression, when, second_at_beginning=True).get_next(datetime)
        return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def _retries(fn: HostedFunction) -> tuple[int, Callable[[int], float]]:
    policy = fn.retry_policy or {}
    if not policy:
        return 0, lambda attempt: 0.0
    count = int(policy.get("max_retry_count", 0))
    if policy.get("strategy") == "exponential_backoff":
        low = timespan_seconds(str(policy.get("minimum_interval", "00:00:01")))
        high = timespan_seconds(str(policy.get("maximum_interval", "00:15:00")))
        return count, lambda attempt: min(high, low * 2 ** attempt)
    delay = timespan_seconds(str(policy.get("delay_interval", "00:00:01")))
    return count, lambda attempt: delay


class TimerRunner:
    def __init__(self, functions: Sequence[HostedFunction], stats: HostStats,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.functions = list(functions)
        self.schedules = {fn.name: Schedule(fn.schedule or "") for fn in self.functions}
        self.stats = stats
        self.clock = clock
        self.running = 0
        self.next_run: dict[str, datetime] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._active: set[str] = set()  # timers running now

    def start(self) -> None:
        for fn in self.functions:
            self._tasks.append(asyncio.create_task(self._loop(fn), name=f"timer-{fn.name}"))

    async def stop(self, grace: float = 10.0) -> None:
        # a run in progress gets ``grace`` seconds; sleeping loops are cancelled at once
        for fn, task in zip(self.functions, self._tasks, strict=True):
            if fn.name not in self._active:
                task.cancel()
        _, pending = await asyncio.wait(self._tasks, timeout=grace) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, fn: HostedFunction) -> None:
        schedule = self.schedules[fn.name]
        due = self.clock()
        if not fn.run_on_startup:
            due = schedule.next_after(due)
        while True:
            self.next_run[fn.name] = due
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            started = self.clock()
            past_due = started - due > PAST_DUE_AFTER
            self._active.add(fn.name)
            try:
                await self._run(fn, schedule, due, past_due)
            finally:
                self._active.discard(fn.name)
            # occurrences missed while this run lasted make one past-due run, for the latest of them
            due = schedule.next_after(due)
            now = self.clock()
            while due < now:
                following = schedule.next_after(due)
                if following > now:
                    break
                due = following

    async def _run(self, fn: HostedFunction, schedule: Schedule, due: datetime, past_due: bool) -> None:
        retries, delay = _retries(fn)
        request = azf_timer.TimerRequest(past_due=past_due, schedule_status={
            "Last": due.isoformat(), "Next": schedule.next_after(due).isoformat(),
            "LastUpdated": self.clock().isoformat()}, schedule={"AdjustForDST": False})
        for attempt in range(retries + 1):
            self.running += 1
            try:
                await invoke(fn, request, retry_count=attempt, max_retry_count=retries)
            except Exception as exc:
                self.stats.add(TIMER_FAILURES, fn.name)
                log.warning("timer %s failed (attempt %d of %d): %s: %s", fn.name, attempt + 1, retries + 1,
                            type(exc).__name__, exc)
                if attempt < retries:
                    await asyncio.sleep(delay(attempt))
                    continue
            else:
                return
            finally:
                self.running -= 1
                self.stats.add(TIMER_RUNS, fn.name)
