"""Fixtures: the test app hosted by a DevHost on loopback, with its broker file and keys in tmp_path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sandbox.host import AppSettings, DevHost
from shared.transport.local import LocalBroker
from tests.host.testapp import SETTINGS, Record, build_app

MAX_DELIVERIES = 3


def host_json(tmp_path: Path) -> Path:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {
        "http": {"routePrefix": "api"}, "serviceBus": {"maxDeliveryCount": MAX_DELIVERIES}}}))
    return path


def make_host(record: Record, tmp_path: Path, **options) -> DevHost:
    options = {"keys_path": tmp_path / "keys.json", "broker_path": tmp_path / "broker.sqlite", "timers": False,
               "host_json": host_json(tmp_path), "app_settings": AppSettings(fallbacks=SETTINGS),
               "stop_grace": 0.5, **options}
    return DevHost(build_app(record), **options)


@pytest.fixture
def record() -> Record:
    return Record()


@pytest.fixture
async def host(record: Record, tmp_path: Path) -> AsyncIterator[DevHost]:
    h = make_host(record, tmp_path)
    await h.start()
    try:
        yield h
    finally:
        record.release.set()
        await h.stop()


@pytest.fixture
async def broker(host: DevHost) -> AsyncIterator[LocalBroker]:
    """A second connection to the host's broker file, as the app (or another process) has."""
    b = LocalBroker(host.broker_path)
    await b.open()
    yield b
    await b.close()


@pytest.fixture
async def client(host: DevHost) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=host.url, timeout=10) as c:
        yield c
