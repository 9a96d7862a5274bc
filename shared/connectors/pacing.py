"""Pacing under service protection limits: learn the request budget, then never exceed it.

Both services limit requests per user in a *sliding* window (Dataverse: 6000 per 300 s; Finance's
user-based limits alike) and answer 429 + ``Retry-After`` when it is full. Bursting again after
each Retry-After wastes the rejected requests and the rounding of Retry-After up to whole seconds.
So the first throttle teaches the client the window; from then on the client keeps a log of its
own admitted requests and holds a request while the learned window is full: the service's window
is mirrored, not overrun.

Why not a token/leaky bucket (``aiolimiter``)? A bucket of capacity C refilling at r lets C + r*W
requests through in some W seconds; to stay inside a sliding window of R per W that forces
C + r*W <= R: even spacing below R/W, and never the window's whole budget. Mirroring the window
admits exactly R per W, as the service does.

What is learned, from the service's answers only:
- a 429 that states its limit ("limit of 6000 over time window of 300 seconds", both services'
  wording) gives budget and window outright;
- otherwise the first 429 of an episode: the budget is the number of our requests admitted before
  the rejected one, the window runs from the oldest of them being *sent* (no later than the service
  counted it) to ``now + Retry-After`` — an upper bound, so it is safe;
- a 429 although the mirror had room: fewer admitted in the learned window than the budget means a
  smaller budget (or another client shares it), so it shrinks; as many means a longer window, so it
  grows to the new bound. 429s for requests sent before the episode began are its echoes.

The mirror counts a request from when its answer arrived (no earlier than the service counted it)
and counts requests still in flight, so it never frees a slot before the service does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# The services' documented window: requests older than this never count.
MAX_WINDOW_SECONDS = 300.0


@dataclass(frozen=True)
class _Admitted:
    sent: float
    answered: float


class RequestBudget:
    """A learned sliding window of ``budget`` requests per ``window`` seconds (None until learned)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, horizon: float = MAX_WINDOW_SECONDS) -> None:
        self._clock = clock
        self.horizon = horizon
        self.budget: int | None = None
        self.window: float | None = None
        self._admitted: deque[_Admitted] = deque()  # in order of answer
        self._in_flight: dict[float, int] = {}  # send time -> requests sent then, not yet answered
        self._episode_start = float("-inf")

    @property
    def learned(self) -> bool:
        return self.budget is not None and self.window is not None

    def _trim(self, now: float) -> None:
        keep = max(self.horizon, self.window or 0.0)
        while self._admitted and self._admitted[0].answered <= now - keep:
            self._admitted.popleft()

    def wait(self) -> float:
        """Seconds until the learned window has room for one more request (0 when it has)."""
        if self.budget is None or self.window is None:
            return 0.0
        now = self._clock()
        self._trim(now)
        in_window = [a.answered for a in self._admitted if a.answered > now - self.window]
        used = len(in_window) + sum(self._in_flight.values())
        if used < self.budget:
            return 0.0
        excess = used - self.budget  # this many must leave the window before one more may go
        if excess >= len(in_window):
            # Only answers still in flight can make room; the caller is woken when one arrives.
            return self.window
        return max(0.0, in_window[excess] + self.window - now)

    def sent(self) -> float:
        """Record a request leaving now; returns its send time, to hand back with its outcome."""
        now = self._clock()
        self._in_flight[now] = self._in_flight.get(now, 0) + 1
        return now

    def _answered(self, sent_at: float) -> None:
        left = self._in_flight.get(sent_at, 0) - 1
        if left > 0:
            self._in_flight[sent_at] = left
        else:
            self._in_flight.pop(sent_at, None)

    def admitted(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` was answered (with anything but a 429): it counted."""
        self._answered(sent_at)
        self._admitted.append(_Admitted(sent_at, self._clock()))

    def throttled(self, sent_at: float, retry_after: float | None, limit: tuple[int, float] | None = None) -> None:
        """The request sent at ``sent_at`` was rejected (it doesn't count against the window)."""
        self._answered(sent_at)
        if limit is not None:
            self.budget, self.window = max(1, limit[0]), float(limit[1])
            return
        if retry_after is None or sent_at < self._episode_start:
            return
        now = self._clock()
        self._episode_start = now
        released = now + retry_after
        # Sent before the rejected one: admitted, or (still in flight) admitted ahead of it.
        before = sorted([a.sent for a in self._admitted if a.sent < sent_at]
                        + [s for s, n in self._in_flight.items() if s < sent_at for _ in range(n)])
        before = [s for s in before if s > released - self.horizon]
        if not self.learned:
            if before:
                self.budget, self.window = len(before), released - before[0]
            return
        assert self.budget is not None and self.window is not None
        in_window = [s for s in before if s > sent_at - self.window]
        if len(in_window) < self.budget:
            self.budget = max(1, len(in_window))
        else:
            self.window = max(self.window, released - in_window[-self.budget])

    def describe(self) -> dict[str, float | int | None]:
        return {"budget": self.budget, "window_seconds": self.window}
