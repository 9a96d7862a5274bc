"""The shared retry policy: exponential backoff with full jitter, Retry-After honoured, time-bounded.

Built on stamina: a per-call backoff hook decides (from the error's *type* only) whether to retry
and how long to wait. The whole call, waits included, stays inside ``budget_seconds`` so a function
invocation finishes inside its timeout: when the next wait would cross the budget, the last error is
raised instead (the sync engine then reschedules the message).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import stamina

from shared.connectors.errors import ConnectorError, Throttled

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """``budget_seconds`` bounds the whole call; ``initial``/``cap`` shape the backoff."""

    budget_seconds: float
    initial: float = 0.5
    cap: float = 30.0
    max_attempts: int | None = None
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform in [0, min(cap, initial * 2^(n-1))] for the n-th retry."""
        return self.rand(0.0, min(self.cap, self.initial * 2 ** (retry_number - 1)))

    def wait_for(self, exc: BaseException, retry_number: int) -> float | None:
        """Seconds to wait before retry ``retry_number``, or None when ``exc`` must not be retried."""
        if not isinstance(exc, ConnectorError) or not exc.retryable:
            return None
        if isinstance(exc, Throttled) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(retry_number)

    async def call(self, fn: Callable[[int], Awaitable[T]]) -> T:
        """Run ``fn(attempt_number)`` until it succeeds, fails permanently or the budget runs out."""
        deadline = self.clock() + self.budget_seconds
        retries = 0

        def hook(exc: Exception) -> bool | float:
            nonlocal retries
            wait = self.wait_for(exc, retries + 1)
            if wait is None or self.clock() + wait > deadline:
                return False
            retries += 1
            return wait

        async for attempt in stamina.retry_context(
            on=hook, attempts=self.max_attempts, timeout=self.budget_seconds
        ):
            with attempt:
                return await fn(attempt.num)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
