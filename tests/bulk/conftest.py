"""Bulk tests: the session's emulators loaded with demo data, a fresh SQLite state store per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.bulk import BulkContext
from shared.catalog import load_catalog
from shared.connectors.http import registry
from shared.mapping import compile_catalog
from shared.settings import DEFAULT_MAPS_DIR, Settings, load_settings
from shared.state.sqlite import SqliteStateStore
from tests.conftest import EMULATOR_TOKEN

COMPILED = compile_catalog(load_catalog(DEFAULT_MAPS_DIR))
DEMO_ROWS, DEMO_SEED = 600, 3


def settings_for(dv: Any, fo: Any, **overrides: Any) -> Settings:
    return load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                         static_token=EMULATOR_TOKEN, retry_budget_seconds=5.0, **overrides)


def load_demo(dv: Any, fo: Any, rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> dict[str, int]:
    from sandbox.demo import load

    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    return load(dv.app.state.emulator, fo.app.state.emulator, rows=rows, seed=seed)


@pytest.fixture
async def bulk(emulators, tmp_path) -> AsyncIterator[tuple[BulkContext, Any, Any]]:
    dv, fo = emulators
    load_demo(dv, fo)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    ctx = BulkContext.from_settings(settings_for(dv, fo, page_size=10, batch_size=4), COMPILED, state)
    yield ctx, dv, fo
    await state.close()
    await registry.aclose()
