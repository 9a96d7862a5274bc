"""Timers on their NCRONTAB schedule, and what discovery makes of an app's bindings."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import azure.functions as func
import pytest

from sandbox.host import AppSettings, Kind, discover
from sandbox.host.http import starlette_paths
from sandbox.host.timers import Schedule
from tests.host.conftest import make_host
from tests.host.testapp import SETTINGS, TOPIC, Record, build_app


async def test_an_every_second_timer_fires_on_schedule(tmp_path, record: Record):
    host = make_host(record, tmp_path, timers=True)
    await host.start()
    try:
        while len(record.ticks) < 3:
            assert host.stats()["timer_runs"] < 10
            await asyncio.sleep(0.05)
    finally:
        await host.stop()
    times = [t for t, _ in record.ticks[:3]]
    assert not any(past_due for _, past_due in record.ticks)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.8 <= g <= 1.2 for g in gaps), gaps
    # fired on whole seconds (UTC), not one second after start
    assert all(t % 1 < 0.3 for t in times), times


def test_ncrontab_puts_seconds_first():
    base = datetime(2025, 1, 1, 10, 0, 0, tzinfo=UTC)
    every_15_minutes = Schedule("0 */15 * * * *")
    assert every_15_minutes.next_after(base) == datetime(2025, 1, 1, 10, 15, tzinfo=UTC)
    assert Schedule("30 5 * * * *").next_after(base) == datetime(2025, 1, 1, 10, 5, 30, tzinfo=UTC)
    assert Schedule("00:00:10").next_after(base) == datetime(2025, 1, 1, 10, 0, 10, tzinfo=UTC)
    for bad in ("*/5 * * * *", "0 61 * * * *", "nonsense"):
        with pytest.raises(ValueError):
            Schedule(bad)


def test_discovery_resolves_app_settings_and_reads_every_trigger():
    inventory = discover(build_app(Record()), AppSettings(fallbacks=SETTINGS, environ={}))
    by_name = {f.name: f for f in inventory.functions}
    assert inventory.skipped == []
    assert {n: f.kind for n, f in by_name.items()} == {
        "hello": Kind.HTTP, "items": Kind.HTTP, "admin_op": Kind.HTTP, "boom": Kind.HTTP,
        "orders": Kind.SERVICE_BUS, "orders_dead_letters": Kind.SERVICE_BUS, "work": Kind.SERVICE_BUS,
        "tick": Kind.TIMER}
    orders, dead = by_name["orders"], by_name["orders_dead_letters"]
    assert (orders.topic, orders.subscription, orders.sessions, orders.dead_letter) == (TOPIC, "orders", True, False)
    assert dead.entity == orders.entity and dead.dead_letter and dead.source.endswith("/$deadletterqueue")
    assert by_name["items"].outputs[0].queue == "host-test-out" and by_name["items"].methods == ("GET", "POST")
    assert by_name["admin_op"].context_arg == "context" and by_name["admin_op"].auth_level.value == "admin"
    assert by_name["tick"].schedule == "* * * * * *" and not by_name["tick"].run_on_startup


def test_a_function_the_host_cannot_run_is_listed_with_the_reason():
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="m", queue_name="storage-queue", connection="Storage")
    def storage(m: func.QueueMessage) -> None: ...

    @app.service_bus_queue_trigger(arg_name="m", queue_name="%MISSING_SETTING%", connection="SB")
    def unresolved(m: func.ServiceBusMessage) -> None: ...

    @app.service_bus_queue_trigger(arg_name="m", queue_name="q", connection="SB")
    def off(m: func.ServiceBusMessage) -> None: ...

    inventory = discover(app, AppSettings(environ={"AzureWebJobs.off.Disabled": "true"}))
    reasons = {s.name: s.reason for s in inventory.skipped}
    assert inventory.functions == []
    assert "queueTrigger" in reasons["storage"]
    assert "MISSING_SETTING" in reasons["unresolved"]
    assert "Disabled" in reasons["off"]


def test_route_templates_become_starlette_paths():
    assert starlette_paths("api", "items/{id:int}") == ["/api/items/{id:int}"]
    assert starlette_paths("api", "files/{*path}") == ["/api/files/{path:path}"]
    assert starlette_paths("", "a/{b?}") == ["/a", "/a/{b}"]
    assert starlette_paths("api", "x/{g:guid}") == ["/api/x/{g}"]
