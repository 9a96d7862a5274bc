"""Fixtures for the transport tests: a controllable clock and a local broker in a temp file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from transport_clock import FakeClock

from shared.transport.local import LocalBroker


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker_path(tmp_path: Path) -> Path:
    return tmp_path / "broker.sqlite"


@pytest.fixture
async def broker(broker_path: Path, clock: FakeClock) -> AsyncIterator[LocalBroker]:
    b = LocalBroker(broker_path, clock=clock, lock_duration=30, max_delivery_count=3)
    await b.open()
    yield b
    await b.close()
