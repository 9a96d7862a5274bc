"""The pull tests' world: both emulators over loopback HTTP, a real local broker, SQLite state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.events.notification import ChangeNotification
from shared.mapping import CompiledMap
from shared.pull import PullService
from shared.runtime import get_runtime
from shared.settings import load_settings
from shared.state.sqlite import SqliteStateStore
from shared.transport.local import LocalBroker, LocalBrokerTransport
from shared.transport.messages import OutboundMessage, subscription_path

TOKEN = "t"  # tests/conftest.py EMULATOR_TOKEN
TOPIC = "dualsync-changes"
ALL = "all"


class FlakyTransport(LocalBrokerTransport):
    """The local broker, with publishing that fails while ``failing`` is set (a broker outage)."""

    failing = False

    async def publish(self, entity: str, messages: Sequence[OutboundMessage]) -> None:
        if self.failing:
            raise ConnectionError("broker unavailable")
        await super().publish(entity, messages)


@dataclass
class World:
    dv: Any
    fo: Any
    state: SqliteStateStore
    broker: LocalBroker
    transport: FlakyTransport
    dataverse: DataverseConnector
    finance: FinanceConnector

    def service(self, *, page_size: int = 5000, max_rows: int = 50_000,
                overlap: timedelta = timedelta(minutes=5)) -> PullService:
        return PullService.create(get_runtime().compiled, self.dataverse, self.finance, self.state, self.transport,
                                  TOPIC, page_size=page_size, max_rows=max_rows, overlap=overlap)

    def compiled(self, name: str) -> CompiledMap:
        return get_runtime().compiled[name]

    async def notifications(self) -> list[ChangeNotification]:
        """Every notification on the topic so far, in order (peeked, not consumed)."""
        messages = await self.broker.peek(subscription_path(TOPIC, ALL), max_count=10_000)
        return [ChangeNotification.from_message(m.body) for m in messages]

    async def message_ids(self) -> list[str | None]:
        return [m.message_id for m in await self.broker.peek(subscription_path(TOPIC, ALL), max_count=10_000)]

    def dv_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.dv.url + "/api/data/v9.2/", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10)

    def fo_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.fo.url + "/data/", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10)


@pytest.fixture
async def world(emulators, tmp_path) -> AsyncIterator[World]:
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=3.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    await broker.create_topic(TOPIC)
    await broker.create_subscription(TOPIC, ALL)
    yield World(dv, fo, state, broker, FlakyTransport(broker), DataverseConnector.from_settings(settings),
                FinanceConnector.from_settings(settings))
    await broker.close()
    await state.close()
    await registry.aclose()
