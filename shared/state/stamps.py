"""Instants as the state stores keep them: fixed-width UTC ISO text, which sorts as the instants do."""

from __future__ import annotations

from datetime import UTC, datetime


def stamp_text(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    # fromisoformat reads the trailing Z since 3.11 and is ~10x cheaper than strptime (read per checkpoint)
    return datetime.fromisoformat(text).astimezone(UTC)
