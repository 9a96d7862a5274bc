"""A clock tests move by hand, so lock expiry and schedules need no sleeps."""

from __future__ import annotations


class FakeClock:
    """Time that moves only when a test says so (no sleeps for lock expiry or schedules)."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
