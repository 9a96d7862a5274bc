"""Business events: sent after commit to HTTPS-style webhooks (with retries) and Python callables."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.finance import FinanceEmulator
from sandbox.httpserver import RunningServer, serve_in_thread
from tests.emulators.finance.conftest import seed_basics


class Receiver:
    """A webhook on loopback that fails the first ``fail_first`` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.calls = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                return Response(status_code=503)
            self.bodies.append(json.loads(body))
        return Response(status_code=200)


@pytest.fixture()
def receiver() -> Iterator[tuple[Receiver, RunningServer]]:
    rec = Receiver()
    srv = serve_in_thread(Starlette(routes=[Route("/hook", rec.hook, methods=["POST"])]))
    try:
        yield rec, srv
    finally:
        srv.stop()


def test_webhook_gets_business_event_after_each_write(client: httpx.Client, emulator: FinanceEmulator,
                                                      receiver: tuple[Receiver, RunningServer]) -> None:
    rec, srv = receiver
    seed_basics(emulator)
    emulator.register_endpoint(srv.url + "/hook")
    assert client.post("/ProjCDSTasks", json={"ProjectId": "P-1", "Task": "1", "Name": "x"}).status_code == 201
    path = "/ProjCDSTasks(dataAreaId='usmf',ProjectId='P-1',Task='1')"
    assert client.patch(path, json={"Name": "y"}).status_code == 204
    assert client.delete(path).status_code == 204
    assert client.post("/ProjCDSTasks", json={"ProjectId": "P-404", "Task": "1", "Name": "x"}).status_code == 400
    assert emulator.wait_for_events(5)
    assert [b["Operation"] for b in rec.bodies] == ["Create", "Update", "Delete"]  # nothing for the failed write
    first = rec.bodies[0]
    assert first["BusinessEventId"] == "ProjCDSTaskCreatedBusinessEvent"
    assert first["BusinessEventLegalEntity"] == "USMF"
    assert first["EntityName"] == "ProjCDSTaskEntity" and first["EntitySetName"] == "ProjCDSTasks"
    assert (first["dataAreaId"], first["ProjectId"], first["Task"]) == ("usmf", "P-1", "1")
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", first["EventId"])
    assert re.fullmatch(r"/Date\(\d{13}\)/", first["EventTime"])
    assert first["EventTimeIso8601"].endswith("Z")
    for name in ("ContextRecordSubject", "InitiatingUserAADObjectId", "MajorVersion", "MinorVersion",
                 "ParentContextRecordSubjects"):
        assert name in first
    numbers = [b["ControlNumber"] for b in rec.bodies]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert emulator.stats()["events"]["delivered"] == 3


def test_webhook_failures_are_retried_then_counted(client: httpx.Client, emulator: FinanceEmulator,
                                                   receiver: tuple[Receiver, RunningServer]) -> None:
    rec, srv = receiver
    rec.fail_first = 2
    emulator.register_endpoint(srv.url + "/hook")
    assert client.post("/Currencies", json={"CurrencyCode": "EUR", "Name": "Euro"}).status_code == 201
    assert emulator.wait_for_events(5)
    assert rec.calls == 3 and len(rec.bodies) == 1  # two failures, delivered on the 2nd retry
    rec.fail_first = 100
    assert client.post("/Currencies", json={"CurrencyCode": "JPY", "Name": "Yen"}).status_code == 201
    assert emulator.wait_for_events(5)
    events = emulator.stats()["events"]
    assert events["failed"] == 1 and rec.calls == 3 + 4  # first try + 3 retries


def test_callable_endpoint_with_filters_and_properties(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    got: list[tuple[dict, dict[str, str]]] = []
    emulator.register_endpoint(publish=lambda body, props: got.append((json.loads(body), props)),
                               legal_entities=["GBSI"])
    client.patch("/ProjCDSProjects(dataAreaId='usmf',ProjectID='P-1')", json={"Description": "us"})
    client.patch("/ProjCDSProjects(dataAreaId='gbsi',ProjectID='P-9')?cross-company=true", json={"Description": "uk"})
    assert emulator.wait_for_events(5)
    assert len(got) == 1
    body, props = got[0]
    assert body["ProjectID"] == "P-9"
    assert props == {"BusinessEventId": "ProjCDSProjectUpdatedBusinessEvent",
                     "BusinessEventCategory": "ProjectManagementAndAccounting", "LegalEntity": "GBSI"}


def test_endpoints_over_the_control_api(server: RunningServer, emulator: FinanceEmulator,
                                        receiver: tuple[Receiver, RunningServer]) -> None:
    rec, srv = receiver
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}) as admin:
        r = admin.post("/_emulator/endpoints", json={"url": srv.url + "/hook"})
        assert r.status_code == 201
        eid = r.json()["id"]
        assert [e["id"] for e in admin.get("/_emulator/endpoints").json()["value"]] == [eid]
        assert admin.post("/data/Currencies", json={"CurrencyCode": "EUR", "Name": "Euro"}).status_code == 201
        assert emulator.wait_for_events(5) and len(rec.bodies) == 1
        assert admin.delete(f"/_emulator/endpoints/{eid}").status_code == 204
        assert admin.delete(f"/_emulator/endpoints/{eid}").status_code == 404
        assert admin.post("/_emulator/endpoints", json={"url": "ftp://x"}).status_code == 400
        assert admin.post("/data/Currencies", json={"CurrencyCode": "JPY", "Name": "Yen"}).status_code == 201
    assert emulator.wait_for_events(5) and len(rec.bodies) == 1


def test_events_are_sent_several_at_a_time(client: httpx.Client, emulator: FinanceEmulator) -> None:
    import asyncio

    in_flight, peak = 0, 0
    lock = threading.Lock()

    async def slow(body: bytes, props: dict[str, str]) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        with lock:
            in_flight -= 1

    emulator.register_endpoint(publish=slow)
    for i in range(16):
        assert client.post("/Currencies", json={"CurrencyCode": f"C{i:02d}", "Name": f"c{i}"}).status_code == 201
    assert emulator.wait_for_events(10)
    assert emulator.stats()["events"]["delivered"] == 16 and peak > 1


def test_removing_an_endpoint_drops_its_queued_events(client: httpx.Client, emulator: FinanceEmulator) -> None:
    import time

    release = threading.Event()

    async def stuck(body: bytes, props: dict[str, str]) -> None:
        import asyncio

        while not release.is_set():
            await asyncio.sleep(0.01)

    endpoint = emulator.register_endpoint(publish=stuck)
    for i in range(20):
        client.post("/Currencies", json={"CurrencyCode": f"D{i:02d}", "Name": f"d{i}"})
    assert emulator.stats()["events"]["pending"] > 0
    emulator.unregister_endpoint(endpoint)  # from this (another) thread, as the sandbox does
    deadline = time.monotonic() + 5
    while emulator.stats()["events"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert emulator.stats()["events"]["pending"] == 0  # nothing left waiting forever
