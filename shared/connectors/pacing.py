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

Tightening a learned window. ``Retry-After`` comes in whole seconds, so the first bound can be up
to a second too long (a 2 s window learned as 2.5 s paces at 80 %). The window is narrowed between
two bounds, in the mirror's own terms (counted from answers):
- ``good``: the shortest window under which a whole budget of *paced* requests (held by the mirror,
  then sent the moment it had room) was admitted; it starts at the first episode's upper bound;
- ``floor``: the longest window proven too short: a paced request sent under it was throttled, or
  (first episode) the Retry-After's lower bound, since a rounded-up ``r`` means the window
  frees after more than ``r - 1`` seconds.
While they are more than ``TOLERANCE`` apart, the next window *probes* a quarter of the way down
from ``good``. Steps are small, and each failed probe doubles the wait before the next, because a
failed probe costs a Retry-After of cool-down for every request, while a too-long window only costs
the difference. Once converged the window stays at
``good``; a throttle there (the service got stricter, or jitter) lifts ``good`` by ``RAISE``.
A limit the service states outright is exact and never probed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# The services' documented window: requests older than this never count.
MAX_WINDOW_SECONDS = 300.0
# Probing stops when the bounds are this close (relative to the known-good window).
TOLERANCE = 0.02
# A probe goes this fraction of the way from ``good`` down to ``floor``.
PROBE_STEP = 0.25
# A throttle at the known-good window lifts it by this fraction.
RAISE = 0.05
# Each failed probe doubles the evidence the next one waits for, up to 2 ** this.
MAX_PROBE_BACKOFF = 4


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
        self.good: float | None = None  # shortest window that held for a whole budget of paced requests
        self.floor = 0.0  # longest window proven too short
        self.stated = False  # the service told its limit: exact, nothing to probe
        self.probes_failed = 0
        self._upper = 0.0  # the first episode's upper bound on the service's window
        self._provisional: dict[float, int] = {}  # in flight when the budget was learned, counted in it
        self._admitted: deque[_Admitted] = deque()  # in order of answer
        self._in_flight: dict[float, int] = {}  # send time -> requests sent then, not yet answered
        self._window_at: dict[float, float] = {}  # send time -> window in force when it left
        self._held = 0  # paced requests admitted in a row under the current window
        self._episode_start = float("-inf")

    @property
    def learned(self) -> bool:
        return self.budget is not None and self.window is not None

    @property
    def converged(self) -> bool:
        """Nothing left to probe: the limit was stated, or ``good`` and ``floor`` are close."""
        if self.stated or self.good is None:
            return self.learned
        return self.good - self.floor <= TOLERANCE * self.good

    def _trim(self, now: float) -> None:
        keep = max(self.horizon, self.window or 0.0, self.good or 0.0)
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
        if self.window is not None:
            self._window_at[now] = self.window
        return now

    def _answered(self, sent_at: float) -> float | None:
        """Forget the request as in flight; the window it was sent under (None before learning)."""
        left = self._in_flight.get(sent_at, 0) - 1
        window = self._window_at.get(sent_at)
        if left > 0:
            self._in_flight[sent_at] = left
        else:
            self._in_flight.pop(sent_at, None)
            self._window_at.pop(sent_at, None)
        return window

    def admitted(self, sent_at: float, *, paced: bool = False) -> None:
        """The request sent at ``sent_at`` was answered (with anything but a 429): it counted.

        ``paced``: the mirror held it and let it go the moment it had room, so its admission is
        evidence that the window it was sent under is long enough."""
        window = self._answered(sent_at)
        self._settle(sent_at)
        self._admitted.append(_Admitted(sent_at, self._clock()))
        if not paced or window is None or self.budget is None or self.converged:
            return
        if self.window is not None and window > self.window:
            return  # sent under a longer window than the one being tried now: proves nothing new
        self._held += 1
        if self._held >= self._evidence_needed():
            self.good = min(self.good if self.good is not None else window, window)
            self._next_window()

    def _evidence_needed(self) -> int:
        """Paced admissions that make a window ``good``: half a budget (each one tests the window
        against a different earlier request), doubled after every failed probe so that a window
        near its floor is probed ever more rarely."""
        assert self.budget is not None
        return max(1, self.budget // 2) << min(self.probes_failed, MAX_PROBE_BACKOFF)

    def _settle(self, sent_at: float) -> bool:
        """True when ``sent_at`` was in flight (so counted provisionally) when the budget was learned."""
        left = self._provisional.get(sent_at, 0)
        if left <= 0:
            return False
        if left == 1:
            del self._provisional[sent_at]
        else:
            self._provisional[sent_at] = left - 1
        return True

    def _next_window(self) -> None:
        """Probe a step below ``good``, or settle on it once the bounds are close."""
        assert self.good is not None
        self._held = 0
        if self.converged:
            self.window = self.good
        else:
            self.window = self.good - PROBE_STEP * (self.good - self.floor)

    def throttled(
        self, sent_at: float, retry_after: float | None, limit: tuple[int, float] | None = None, *, paced: bool = False
    ) -> None:
        """The request sent at ``sent_at`` was rejected (it doesn't count against the window)."""
        sent_under = self._answered(sent_at)
        if self._settle(sent_at) and self.budget is not None and not self.stated:
            # Counted in the budget as admitted ahead of the first rejected one, but it arrived after.
            self.budget = max(1, self.budget - 1)
        if limit is not None:
            self.budget, self.window = max(1, limit[0]), float(limit[1])
            self.good, self.floor, self.stated = self.window, self.window, True
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
            # Requests can overtake each other on the way, so the budget is every request of ours
            # the service admitted ahead of the rejection: those answered so far, plus those still
            # in flight, provisionally (each that turns out rejected is taken off again).
            counted = sorted([a.sent for a in self._admitted]
                             + [s for s, n in self._in_flight.items() for _ in range(n)])
            counted = [s for s in counted if s > released - self.horizon]
            if counted:
                self.budget, self.window = len(counted), released - counted[0]
                self.good = self._upper = self.window
                self._provisional = dict(self._in_flight)
                self.floor = min(self._lower_bound(sent_at, retry_after), self.window)
                self._held = 0
            return
        assert self.budget is not None and self.window is not None
        if self.stated:
            in_window = [s for s in before if s > sent_at - self.window]
            if len(in_window) < self.budget:
                self.budget = max(1, len(in_window))
            else:
                self.window = max(self.window, released - in_window[-self.budget])
            return
        known = self.good if self.good is not None else self.window
        # Ours that the service may still have counted: answered after the longest window we think
        # possible had started, or not answered yet. Fewer than the budget: it is smaller than we
        # learned (another client shares it), whatever the window.
        longest = max(self.window, known, self._upper)
        possible = sum(1 for a in self._admitted if a.answered > sent_at - longest) + sum(self._in_flight.values())
        if possible < self.budget:
            self.budget = max(1, possible)
            return
        # The window it was sent under is too short.
        tried = sent_under if sent_under is not None else self.window
        self.floor = max(self.floor, tried)
        self.probes_failed += 1
        if tried >= known:
            self.good = max(known, tried * (1 + RAISE))
        self._next_window()

    def _lower_bound(self, sent_at: float, retry_after: float) -> float:
        """The window is longer than this: a whole-second Retry-After ``r`` (rounded up) means the
        oldest counted request leaves more than ``r - 1`` s after the service answered. That
        request was counted no later than the ``budget``-th latest answer among ours (requests
        still in flight answer later still), and the service answered no earlier than we sent."""
        assert self.budget is not None
        answers = sorted((a.answered for a in self._admitted), reverse=True)
        in_flight = sum(self._in_flight.values())
        k = self.budget - in_flight  # the budget-th latest answer, counting in-flight ones as latest
        if k < 1 or k > len(answers):
            return 0.0
        return max(0.0, sent_at + max(0.0, retry_after - 1.0) - answers[k - 1])

    def describe(self) -> dict[str, float | int | None]:
        return {"budget": self.budget, "window_seconds": self.window}
