"""What a scenario reports: named checks, each passed or not with a detail a user can read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    name: str
    passed: bool
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "seconds": round(self.seconds, 2),
                "checks": [c.as_dict() for c in self.checks]}

    def check(self, name: str) -> Check:
        """The check called ``name`` (tests read them by name)."""
        found = [c for c in self.checks if c.name == name]
        if not found:
            raise KeyError(f"scenario {self.name} has no check {name!r}; it has {[c.name for c in self.checks]}")
        return found[0]


class Checks:
    """Collects a scenario's checks as it runs."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.items.append(Check(name, bool(passed), detail))
        return bool(passed)

    def equal(self, name: str, actual: Any, expected: Any) -> bool:
        ok = _same(actual, expected)
        return self.check(name, ok, f"{actual!r}" if ok else f"expected {expected!r}, got {actual!r}")

    def contains(self, name: str, text: str | None, part: str) -> bool:
        ok = bool(text) and part in str(text)
        return self.check(name, ok, str(text) if ok else f"expected a text containing {part!r}, got {text!r}")


def _same(actual: Any, expected: Any) -> bool:
    # amounts and rates come back as floats from both systems: compare them to the cent / 1e-6
    if isinstance(expected, float) and isinstance(actual, int | float):
        return abs(float(actual) - expected) <= 1e-6 * max(1.0, abs(expected))
    if isinstance(expected, tuple) and isinstance(actual, tuple) and len(actual) == len(expected):
        return all(_same(a, e) for a, e in zip(actual, expected, strict=True))
    return bool(actual == expected)
