"""End to end over loopback HTTP: the sandbox emulators' notifications, in their real formats, go
through the intake and come out as routed change notifications."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from uuid import UUID

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import dataverse, finance
from sandbox.httpserver import RunningServer, serve_in_thread
from shared.events.errors import Rejection
from shared.events.intake import accept_dataverse, accept_finance
from shared.events.notification import ChangeNotification, Operation, Origin
from tests.events.samples import SECRET, catalog, compiled

TOKEN = "events-test-token"


class Intake:
    """A receiver shaped like the future HTTP trigger: intake, then 202 or the rejection's status."""

    def __init__(self) -> None:
        self.notifications: list[ChangeNotification] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    async def webhook(self, request: Request) -> Response:
        body = await request.body()
        try:
            result = accept_dataverse(body, request.headers, catalog(), expected_secret=SECRET)
        except Rejection as rejection:
            with self.lock:
                self.statuses.append(rejection.status)
            return JSONResponse(rejection.as_dict(), status_code=rejection.status)
        with self.lock:
            self.statuses.append(202)
            self.notifications.extend(result.notifications)
        return Response(status_code=202)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture()
def intake() -> Iterator[tuple[Intake, RunningServer]]:
    receiver = Intake()
    running = serve_in_thread(Starlette(routes=[Route("/dataverse", receiver.webhook, methods=["POST"])]))
    try:
        yield receiver, running
    finally:
        running.stop()


def test_dataverse_webhooks_become_notifications(intake: tuple[Intake, RunningServer]) -> None:
    receiver, receiver_server = intake
    server = dataverse.start(port=0, token=TOKEN)
    try:
        emu = server.app.state.emulator
        emu.register_webhook(receiver_server.url + "/dataverse", tables=["msdyn_project"], auth="httpheader",
                             auth_values={"x-dualsync-key": SECRET})
        emu.register_webhook(receiver_server.url + "/dataverse", tables=["msdyn_project"], messages=["Delete"],
                             auth="httpheader", auth_values={"x-dualsync-key": "wrong"})
        with httpx.Client(base_url=server.url + "/api/data/v9.2/", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            company = client.post("cdm_companies", json={"cdm_companycode": "USPM"})
            cid = company.headers["OData-EntityId"][-37:-1]
            created = client.post("msdyn_projects?tag=dualsync-echo", json={
                "msdyn_subject": "P1", "msdyn_company@odata.bind": f"/cdm_companies({cid})"})
            pid = created.headers["OData-EntityId"][-37:-1]
            assert client.patch(f"msdyn_projects({pid})", json={"msdyn_subject": "P1b"}).status_code == 204
            assert client.delete(f"msdyn_projects({pid})").status_code == 204
        wait_for(lambda: len(receiver.statuses) == 4)
    finally:
        server.stop()

    assert sorted(receiver.statuses) == [202, 202, 202, 401]  # the endpoint with the wrong key is refused
    ops = [n.operation for n in receiver.notifications]
    assert ops == [Operation.CREATE, Operation.UPDATE, Operation.DELETE]
    assert {n.map for n in receiver.notifications} == {"projects"}
    assert {n.record_id for n in receiver.notifications} == {UUID(pid)}
    assert receiver.notifications[0].tag == "dualsync-echo" and receiver.notifications[1].tag is None
    messages = [n.to_message() for n in receiver.notifications]
    assert len({m.message_id for m in messages}) == 3 and len({m.session_id for m in messages}) == 1


def test_finance_business_events_become_notifications() -> None:
    published: list[tuple[bytes, dict[str, str]]] = []
    server = finance.start(port=0, token=TOKEN, event_retry_wait=0.01)
    try:
        emu = server.app.state.emulator
        emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
        emu.register_endpoint(publish=lambda body, props: published.append((body, props)))
        with httpx.Client(base_url=server.url + "/data", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            r = client.post("/CustomersV3", json={"dataAreaId": "usmf", "CustomerAccount": "C-7",
                                                 "OrganizationName": "Fabrikam", "CustomerGroupId": "10",
                                                 "SalesCurrencyCode": "USD"})
            assert r.status_code == 201, r.text
            path = "/CustomersV3(dataAreaId='usmf',CustomerAccount='C-7')"
            assert client.patch(path, json={"OrganizationName": "Fabrikam 2"}).status_code == 204
        assert emu.wait_for_events(10)
    finally:
        server.stop()

    notes = []
    for body, props in published:
        # Queue delivery: properties instead of HTTP headers, no content type.
        result = accept_finance(body, props, catalog(), compiled(), require_content_type=False)
        notes.extend(result.notifications)
    assert [n.operation for n in notes] == [Operation.CREATE, Operation.UPDATE]
    assert {(n.map, n.key) for n in notes} == {("customers", '["USMF","C-7"]')}
    assert all(n.origin is Origin.BUSINESS_EVENT for n in notes)
    first, second = (json.loads(body)["ControlNumber"] for body, _ in published)
    assert [n.version for n in notes] == [first, second] and second > first
