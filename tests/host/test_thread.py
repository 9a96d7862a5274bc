"""The dev host on a background thread, for synchronous callers (the sandbox orchestrator)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from sandbox.host import AppSettings, start_in_thread
from shared.transport.local import LocalBroker
from shared.transport.messages import OutboundMessage
from tests.host.conftest import host_json
from tests.host.testapp import SETTINGS, TOPIC, Record, build_app


def send(path, entity: str, messages: list[OutboundMessage]) -> None:
    async def go() -> None:
        async with LocalBroker(path) as broker:
            await broker.send(entity, messages)

    asyncio.run(go())


def test_start_in_thread_serves_and_drains_for_a_synchronous_caller(tmp_path):
    record = Record()
    before = {t.name for t in threading.enumerate()}
    handle = start_in_thread(build_app(record), keys_path=tmp_path / "keys.json",
                             broker_path=tmp_path / "broker.sqlite", timers=False, sessions=2,
                             host_json=host_json(tmp_path), app_settings=AppSettings(fallbacks=SETTINGS))
    try:
        r = httpx.get(handle.url + "/api/items/3", headers={"x-functions-key": handle.function_key})
        assert r.status_code == 200 and r.json()["route"] == {"id": "3"}
        assert httpx.post(handle.url + "/api/admin/op", params={"code": handle.master_key}).status_code == 200
        send(tmp_path / "broker.sqlite", TOPIC, [
            OutboundMessage(body=f"m{n}".encode(), session_id=f"s{n % 4}", application_properties={"map": "orders"})
            for n in range(40)])
        assert handle.wait_idle(20)
        assert len(record.orders) == 40 and record.overlaps == 0
        stats = handle.stats()
        assert stats["completed"] == 40 and stats["http_requests"] == {"200": 2}
    finally:
        handle.stop()
    assert "devhost" not in {t.name for t in threading.enumerate()} - before
    with pytest.raises(httpx.ConnectError):  # the server is gone with it
        httpx.get(handle.url + "/api/hello/x", timeout=2)


def test_stopping_the_host_cancels_what_still_runs_so_its_locks_are_released(tmp_path):
    import azure.functions as func

    lock = asyncio.Lock()  # a process-wide lock, as the app's lazily built services use
    entered = threading.Event()
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hold", methods=["GET"])
    async def hold(req: func.HttpRequest) -> func.HttpResponse:
        async with lock:
            entered.set()
            await asyncio.sleep(3600)
        return func.HttpResponse("never")

    handle = start_in_thread(app, keys_path=tmp_path / "keys.json", broker_path=tmp_path / "broker.sqlite",
                             timers=False, host_json=host_json(tmp_path), stop_grace=0.5)
    caller = threading.Thread(target=lambda: httpx.get(handle.url + "/api/hold", timeout=30), daemon=True)
    try:
        caller.start()
        assert entered.wait(20)
        assert lock.locked()
    finally:
        handle.stop()
    assert not lock.locked()  # the held request was cancelled, not dropped with its lock held


def test_a_function_that_raises_is_answered_500_and_its_failure_is_counted_with_its_reason(tmp_path):
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="boom", methods=["POST"])
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise LookupError("no such ledger row for projects/PRJ-1")

    handle = start_in_thread(app, keys_path=tmp_path / "keys.json", broker_path=tmp_path / "broker.sqlite",
                             timers=False, host_json=host_json(tmp_path))
    try:
        r = httpx.post(handle.url + "/api/boom", content=b"{}")
        assert r.status_code == 500 and "ledger" not in r.text  # the caller learns nothing of the inside
        stats = handle.stats()
    finally:
        handle.stop()
    assert stats["http_requests"] == {"500": 1}
    assert stats["failures"] == {"boom: LookupError": 1}
    assert stats["last_failures"] == ["boom: LookupError: no such ledger row for projects/PRJ-1"]
