"""Counters for reports: deliveries and settlements, HTTP requests by status, timer runs."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

DELIVERED = "delivered"
COMPLETED = "completed"
ABANDONED = "abandoned"
DEAD_LETTERED = "dead_lettered"
TIMER_RUNS = "timer_runs"
TIMER_FAILURES = "timer_failures"
OUTPUT_MESSAGES = "output_messages"
LAST_FAILURES = 10


class HostStats:
    """Thread-safe counters; :meth:`snapshot` is what ``DevHost.stats()`` reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._http: Counter[str] = Counter()
        self._by_function: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._failures: Counter[str] = Counter()  # "function: ExceptionType" -> count
        self._last_failures: list[str] = []

    def add(self, counter: str, function: str | None = None, n: int = 1) -> None:
        with self._lock:
            self._totals[counter] += n
            if function is not None:
                self._by_function[function][counter] += n

    def http_status(self, status: int, function: str | None = None) -> None:
        with self._lock:
            self._http[str(status)] += 1
            if function is not None:
                self._by_function[function][f"http_{status}"] += 1

    def failure(self, function: str, exc: BaseException) -> None:
        """A function that raised: counted by exception type; the last few kept with their message."""
        with self._lock:
            self._failures[f"{function}: {type(exc).__name__}"] += 1
            self._last_failures = [*self._last_failures[-(LAST_FAILURES - 1):],
                                   f"{function}: {type(exc).__name__}: {str(exc)[:300]}"]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            totals = {k: self._totals.get(k, 0) for k in (DELIVERED, COMPLETED, ABANDONED, DEAD_LETTERED,
                                                          TIMER_RUNS, TIMER_FAILURES, OUTPUT_MESSAGES)}
            return {**totals, "http_requests": dict(sorted(self._http.items())),
                    "functions": {k: dict(v) for k, v in sorted(self._by_function.items())},
                    "failures": dict(sorted(self._failures.items())), "last_failures": list(self._last_failures)}
