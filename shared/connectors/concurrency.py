"""Adaptive concurrency per service: AIMD on the in-flight limit plus a shared cool-down gate.

- A 429 halves the limit (once per "generation": the burst of 429s answering requests sent under
  the same limit counts as one signal, so 16 parallel 429s don't collapse the limit to 1).
- A run of successes as long as the current limit raises it by one, never above the ceiling.
- While a Retry-After is pending, no request leaves: every slot waits for the cool-down to end.
- Once a throttle has taught the service's request window (:mod:`pacing`), a request also waits
  while that window is full, so the client paces itself instead of bursting into the next 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from shared.connectors.pacing import RequestBudget


@dataclass
class Slot:
    generation: int
    sent_at: float = 0.0
    throttled: bool = False
    paced: bool = False  # held by the learned window, then sent the moment it had room


class AdaptiveLimiter:
    def __init__(
        self, ceiling: int, *, initial: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be >= 1")
        self.ceiling = ceiling
        self.limit = min(ceiling, initial or ceiling)
        self.in_flight = 0
        self.cooldown_until = 0.0
        self._clock = clock
        self._generation = 0
        self._successes = 0
        self._changed: asyncio.Condition | None = None
        self.throttle_events = 0
        self.budget = RequestBudget(clock)

    def _condition(self) -> asyncio.Condition:
        # Created lazily so the limiter binds to the loop that first uses it.
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def cooling_down(self) -> float:
        """Seconds left in the current cool-down (0 when none)."""
        return max(0.0, self.cooldown_until - self._clock())

    async def acquire(self) -> Slot:
        cond = self._condition()
        paced = False
        async with cond:
            while True:
                held = self.budget.wait()
                paced = paced or held > 0
                pause = max(self.cooling_down(), held)
                if pause > 0:
                    # Sleep out the cool-down (or the full window), waking early if it changes.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), timeout=pause)
                    continue
                if self.in_flight < self.limit:
                    self.in_flight += 1
                    return Slot(self._generation, self.budget.sent(), paced=paced)
                await cond.wait()

    async def release(self, slot: Slot | None = None) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            if slot is not None and not slot.throttled:
                self.budget.admitted(slot.sent_at, paced=slot.paced)
            cond.notify_all()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        s = await self.acquire()
        try:
            yield s
        finally:
            await self.release(s)

    async def on_success(self, slot: Slot) -> None:
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._successes = 0
            cond = self._condition()
            async with cond:
                cond.notify_all()

    async def on_throttle(
        self, slot: Slot, retry_after: float | None, limit: tuple[int, float] | None = None
    ) -> None:
        self.throttle_events += 1
        slot.throttled = True
        self.budget.throttled(slot.sent_at, retry_after, limit, paced=slot.paced)
        if slot.generation == self._generation:
            self.limit = max(1, self.limit // 2)
            self._generation += 1
        self._successes = 0
        if retry_after:
            self.cooldown_until = max(self.cooldown_until, self._clock() + retry_after)
            cond = self._condition()
            async with cond:
                cond.notify_all()
