"""The parts of ``host.json`` the dev host honours."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


def timespan_seconds(text: str) -> float:
    """``[d.]hh:mm:ss[.fff]`` (the .NET TimeSpan form host.json uses) in seconds."""
    m = _TIMESPAN.match(text.strip())
    if m is None:
        raise ValueError(f"not a TimeSpan: {text!r}")
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    max_delivery_count: int | None = None  # None: the entity's own setting (10 when created here)
    max_concurrent_calls: int = 16
    max_message_batch_size: int = 100
    lock_renewal_seconds: float = 300.0  # maxAutoLockRenewalDuration

    @classmethod
    def load(cls, path: Path | None) -> HostConfig:
        if path is None or not path.is_file():
            return cls()
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostConfig:
        ext = data.get("extensions") or {}
        http = ext.get("http") or {}
        sb = ext.get("serviceBus") or {}
        renewal = sb.get("maxAutoLockRenewalDuration")
        return cls(
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            max_delivery_count=int(sb["maxDeliveryCount"]) if "maxDeliveryCount" in sb else None,
            max_concurrent_calls=int(sb.get("maxConcurrentCalls", 16)),
            max_message_batch_size=min(int(sb.get("maxMessageBatchSize", 100)), 1000),
            lock_renewal_seconds=timespan_seconds(renewal) if renewal else 300.0,
        )
