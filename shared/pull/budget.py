"""How much one timer run may do: a wall-clock budget and a row cap, checked between pages.

A run stops at the first page boundary after either is spent; its checkpoint says where to go on,
so the next run resumes there. The defaults leave a 10-minute ``functionTimeout`` (host.json) ample
room even when a page straddles the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

DEFAULT_SECONDS = 240.0
DEFAULT_MAX_ROWS = 50_000


@dataclass
class Budget:
    seconds: float = DEFAULT_SECONDS
    max_rows: int = DEFAULT_MAX_ROWS
    rows: int = 0
    _started: float = field(default_factory=time.monotonic)

    def take(self, rows: int) -> None:
        self.rows += rows

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def spent(self) -> bool:
        return self.rows >= self.max_rows or self.elapsed >= self.seconds
