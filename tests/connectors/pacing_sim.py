"""A deterministic simulation of a client pacing itself against a sliding-window service.

The service counts a request when it *arrives* and rejects it with a whole-second Retry-After
(rounded up, at least 1 s: both emulators' rule) while its window is full; the client sends through
:class:`RequestBudget` the way :class:`AdaptiveLimiter` does (a global cool-down after each 429, at
most ``concurrency`` in flight, held while the learned window is full). Simulated time, seeded
latencies: the result is the same on any machine, so tests can assert on it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from shared.connectors.pacing import RequestBudget


@dataclass
class Outcome:
    seconds: float
    throttled: int
    budget: int | None
    window: float | None
    windows: list[float] = field(default_factory=list)

    def efficiency(self, budget: int, window: float, requests: int) -> float:
        """Requests / the most a sliding window admits in the elapsed time (the bench's formula)."""
        return requests / (budget * (math.floor(self.seconds / window) + 1))


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    sent_at: float = field(compare=False, default=0.0)
    paced: bool = field(compare=False, default=False)
    status: int = field(compare=False, default=0)
    retry_after: float = field(compare=False, default=0.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    *, budget: int = 20, window: float = 2.0, requests: int = 200, concurrency: int = 8,
    up: tuple[float, float] = (0.001, 0.01), down: tuple[float, float] = (0.02, 0.3), seed: int = 1,
) -> Outcome:
    """Send ``requests`` requests; ``up``/``down``: latency ranges before the service counts a
    request and after it (processing plus the answer's way back)."""
    rng = random.Random(seed)
    clock = _Clock()
    pacer = RequestBudget(clock)
    counted: deque[float] = deque()
    events: list[_Event] = []
    seq = 0
    waiting, in_flight, done, throttled = requests, 0, 0, 0
    cooldown_until, held = 0.0, False
    seen: list[float] = []
    while done < requests:
        while waiting and in_flight < concurrency and clock.now >= cooldown_until:
            hold = pacer.wait()
            if hold > 0:
                held = True
                break
            sent = pacer.sent()
            seq += 1
            heapq.heappush(events, _Event(sent + rng.uniform(*up), seq, "arrive", sent, held))
            waiting, in_flight, held = waiting - 1, in_flight + 1, False
            clock.now += 1e-6  # a real clock ticks between two sends
        hold = pacer.wait() if waiting and in_flight < concurrency else 0.0
        wake = [e.at for e in events[:1]]
        if clock.now < cooldown_until:
            wake.append(cooldown_until)
        elif hold > 0:  # the full window frees by itself, or an answer comes first
            wake.append(clock.now + hold)
        event = heapq.heappop(events) if events and events[0].at <= min(wake) else None
        clock.now = max(clock.now, event.at if event else min(wake))
        if event is None:
            continue
        seq += 1
        if event.kind == "arrive":
            while counted and counted[0] <= clock.now - window:
                counted.popleft()
            status, retry_after = 200, 0.0
            if len(counted) >= budget:
                status, retry_after = 429, float(max(1, math.ceil(counted[0] + window - clock.now)))
            else:
                counted.append(clock.now)
            heapq.heappush(events, _Event(clock.now + rng.uniform(*down), seq, "answer", event.sent_at,
                                          event.paced, status, retry_after))
            continue
        in_flight -= 1
        if event.status == 429:
            throttled += 1
            waiting += 1
            pacer.throttled(event.sent_at, event.retry_after, paced=event.paced)
            cooldown_until = max(cooldown_until, clock.now + event.retry_after)
        else:
            done += 1
            pacer.admitted(event.sent_at, paced=event.paced)
        if pacer.window is not None and (not seen or seen[-1] != pacer.window):
            seen.append(pacer.window)
    return Outcome(clock.now, throttled, pacer.budget, pacer.window, seen)
