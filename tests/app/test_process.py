"""A tool that hosts the app again in one process (sandbox, chaos run, tests) forgets every object the
last run built from its settings: services pointing at the last run's broker and state, and locks bound
to the last run's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import ops_http
from shared.process import forget_built_services
from shared.pull.service import get_pull_service
from shared.sync.factory import get_service


def _settings(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    for name, value in {
        "DUALSYNC_DATAVERSE_URL": "http://127.0.0.1:9",
        "DUALSYNC_FINANCE_URL": "http://127.0.0.1:9",
        "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": "t",
        "DUALSYNC_STATE_BACKEND": "sqlite", "DUALSYNC_STATE_SQLITE_PATH": str(work / "state.sqlite"),
        "DUALSYNC_TRANSPORT": "local", "DUALSYNC_BROKER_PATH": str(work / "broker.sqlite"),
    }.items():
        monkeypatch.setenv(name, value)


async def _build_all_at_once() -> tuple[object, object, object]:
    # several first callers at once, as concurrent invocations are: they contend for the build locks
    services = await asyncio.gather(*(get_service() for _ in range(4)))
    pulls = await asyncio.gather(*(get_pull_service() for _ in range(4)))
    ops = await asyncio.gather(*(ops_http.get_operations() for _ in range(4)))
    assert len({id(s) for s in services}) == 1 and len({id(p) for p in pulls}) == 1
    assert len({id(o) for o in ops}) == 1
    return services[0], pulls[0], ops[0]


def test_a_second_run_builds_from_its_own_settings_on_its_own_loop(monkeypatch, tmp_path):
    forget_built_services()
    try:
        _settings(monkeypatch, tmp_path / "first")
        first = asyncio.run(_build_all_at_once())
        forget_built_services()
        _settings(monkeypatch, tmp_path / "second")
        second = asyncio.run(_build_all_at_once())  # a new loop: locks from the first must not be reused
        for a, b in zip(first, second, strict=True):
            assert a is not b
        service = second[0]
        assert Path(service.state.path).parent.name == "second"  # type: ignore[attr-defined]
    finally:
        forget_built_services()


def test_without_forgetting_the_last_runs_service_would_be_reused(monkeypatch, tmp_path):
    forget_built_services()
    try:
        _settings(monkeypatch, tmp_path / "first")
        first = asyncio.run(_build_all_at_once())
        _settings(monkeypatch, tmp_path / "second")
        again = asyncio.run(get_service())
        assert again is first[0]  # why the sandbox and the chaos run call forget_built_services
    finally:
        forget_built_services()


def test_the_retry_policy_comes_from_the_settings(monkeypatch, tmp_path):
    forget_built_services()
    try:
        _settings(monkeypatch, tmp_path)
        monkeypatch.setenv("DUALSYNC_DEPENDENCY_RETRY_ATTEMPTS", "3")
        monkeypatch.setenv("DUALSYNC_RETRY_BASE_DELAY_SECONDS", "0.5")
        policy = asyncio.run(get_service()).handler.policy
        assert (policy.dependency_attempts, policy.base_delay) == (3, 0.5)
        assert [policy.delay(n) for n in range(3)] == [0.5, 1.0, 2.0]
    finally:
        forget_built_services()
