"""One Dataverse emulator per test module on a free loopback port; reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import dataverse
from sandbox.dataverse import DataverseEmulator
from sandbox.httpserver import RunningServer

API = "/api/data/v9.2/"
TOKEN = "dev-token"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = dataverse.start(port=0, token=TOKEN)
    yield running
    running.stop()


@pytest.fixture
def emu(server: RunningServer) -> DataverseEmulator:
    emulator: DataverseEmulator = server.app.state.emulator
    emulator.reset()
    emulator.set_faults(None)
    emulator.set_throttle(None)
    return emulator


@pytest.fixture
def client(server: RunningServer, emu: DataverseEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + API, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=10) as c:
        yield c


@pytest.fixture
def company(client: httpx.Client) -> dict[str, Any]:
    r = client.post("cdm_companies", json={"cdm_companycode": "USPM", "cdm_name": "US PM"},
                    headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    return dict(r.json())
