"""Webhook and Service Bus notifications carry a correct RemoteExecutionContext."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.dataverse import DataverseEmulator
from sandbox.httpserver import RunningServer, serve_in_thread

CT = "http://schemas.microsoft.com/xrm/2011/Contracts"


class Receiver:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_with: list[int] = []  # statuses to answer first, one per call

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        self.calls.append({"headers": dict(request.headers), "query": dict(request.query_params), "raw": raw})
        return Response(status_code=self.fail_with.pop(0) if self.fail_with else 200)


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, RunningServer]]:
    rec = Receiver()
    running = serve_in_thread(Starlette(routes=[Route("/hook", rec.hook, methods=["POST"])]))
    yield rec, running
    running.stop()


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, RunningServer]) -> tuple[Receiver, str]:
    rec, running = receiver_server
    rec.calls.clear()
    rec.fail_with.clear()
    return rec, running.url + "/hook"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in entity["Attributes"]}


def test_webhook_gets_remote_execution_context(client: httpx.Client, emu: DataverseEmulator,
                                               receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    emu.register_webhook(url, tables=["msdyn_projects"], auth="webhookkey", auth_values={"code": "k-1"})
    cid = client.post("cdm_companies", json={"cdm_companycode": "USPM"}).headers["OData-EntityId"][-37:-1]
    r = client.post("msdyn_projects?tag=dualsync", json={
        "msdyn_subject": "P1", "msdyn_company@odata.bind": f"/cdm_companies({cid})",
        "msdyn_projectstage": 192350001, "msdyn_totalplannedcost": 12.5,
        "msdyn_scheduledstart": "2024-02-01T00:00:00Z"})
    pid = r.headers["OData-EntityId"][-37:-1]
    wait_for(lambda: len(rec.calls) == 1)
    call = rec.calls[0]
    assert call["query"] == {"code": "k-1"}
    h = call["headers"]
    assert h["x-ms-dynamics-entity-name"] == "msdyn_project" and h["x-ms-dynamics-request-name"] == "Create"
    assert h["x-ms-dynamics-organization"] and h["x-ms-correlation-request-id"]
    assert "x-ms-dynamics-msg-size-exceeded" not in h
    assert b'"__type":"Entity:http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts"' in call["raw"]
    ctx = json.loads(call["raw"])
    assert ctx["MessageName"] == "Create" and ctx["PrimaryEntityName"] == "msdyn_project"
    assert ctx["PrimaryEntityId"] == pid and ctx["Stage"] == 40 and ctx["Depth"] == 1
    assert ctx["OutputParameters"] == [{"key": "id", "value": pid}]
    assert ctx["SharedVariables"] == [{"key": "tag", "value": "dualsync"}]
    [target] = ctx["InputParameters"]
    assert target["key"] == "Target" and target["value"]["__type"] == f"Entity:{CT}"
    attrs = _attrs(target["value"])
    assert attrs["msdyn_subject"] == "P1"
    assert attrs["msdyn_company"] == {"__type": f"EntityReference:{CT}", "Id": cid, "KeyAttributes": [],
                                      "LogicalName": "cdm_company", "Name": None, "RowVersion": None}
    assert attrs["msdyn_projectstage"] == {"__type": f"OptionSetValue:{CT}", "Value": 192350001}
    assert attrs["msdyn_totalplannedcost"] == {"__type": f"Money:{CT}", "Value": 12.5}
    assert attrs["msdyn_scheduledstart"] == "/Date(1706745600000)/"
    [image] = ctx["PostEntityImages"]
    assert image["key"] == "AsynchronousStepPrimaryName" and _attrs(image["value"])["msdyn_subject"] == "P1"
    for key in ("BusinessUnitId", "CorrelationId", "InitiatingUserId", "IsExecutingOffline", "IsInTransaction",
                "IsOfflinePlayback", "IsolationMode", "Mode", "OperationCreatedOn", "OperationId", "OrganizationId",
                "OrganizationName", "OwningExtension", "ParentContext", "PreEntityImages", "RequestId",
                "SecondaryEntityName", "UserId"):
        assert key in ctx

    client.patch(f"msdyn_projects({pid})", json={"msdyn_subject": "P1b"},
                 headers={"MSCRM.BypassCustomPluginExecution": "true"})
    client.delete(f"msdyn_projects({pid})")
    wait_for(lambda: len(rec.calls) == 3)
    upd, dele = (json.loads(c["raw"]) for c in rec.calls[1:])
    assert upd["MessageName"] == "Update" and set(_attrs(upd["InputParameters"][0]["value"])) >= {"msdyn_subject"}
    assert {"key": "IsBypassCustomPluginExecution", "value": True} in upd["SharedVariables"]
    assert dele["MessageName"] == "Delete" and dele["PostEntityImages"] == []
    assert dele["InputParameters"][0]["value"] == {"__type": f"EntityReference:{CT}", "Id": pid, "KeyAttributes": [],
                                                   "LogicalName": "msdyn_project", "Name": None, "RowVersion": None}
    wait_for(lambda: emu.stats()["notifications"].get("webhook_deliveries") == 3)  # counted after the 200


def test_webhook_filters_auth_headers_retry_and_failures(client: httpx.Client, emu: DataverseEmulator,
                                                         receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    emu.register_webhook(url, tables=["cdm_company"], messages=["Update"], auth="httpheader",
                         auth_values={"X-Secret": "s3"})
    rid = client.post("cdm_companies", json={"cdm_companycode": "A"}).headers["OData-EntityId"][-37:-1]
    rec.fail_with = [503]
    client.patch(f"cdm_companies({rid})", json={"cdm_name": "x"})
    wait_for(lambda: len(rec.calls) == 2)  # one Update, retried once after 503; the Create is filtered out
    assert all(c["headers"]["x-secret"] == "s3" for c in rec.calls)
    wait_for(lambda: emu.stats()["notifications"] == {"webhook_retries": 1, "webhook_deliveries": 1})
    rec.fail_with = [500]
    client.patch(f"cdm_companies({rid})", json={"cdm_name": "y"})
    wait_for(lambda: emu.stats()["notifications"].get("webhook_failures") == 1)
    emu.register_webhook("http://127.0.0.1:9/nothing-listens")  # failing receiver must not break requests
    assert client.patch(f"cdm_companies({rid})", json={"cdm_name": "z"}).status_code == 204
    wait_for(lambda: emu.stats()["notifications"].get("webhook_failures") == 2)


def test_large_payload_is_stripped(client: httpx.Client, emu: DataverseEmulator,
                                   receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    emu.register_webhook(url)
    published: list[tuple[bytes, dict[str, str]]] = []
    emu.register_service_bus(lambda body, props: published.append((body, props)))
    big = "x" * 2000
    rid = client.post("msdyn_projects", json={"msdyn_subject": "Big", "msdyn_description": big}
                      ).headers["OData-EntityId"][-37:-1]
    wait_for(lambda: len(rec.calls) == 1 and len(published) == 1)
    assert "x-ms-dynamics-msg-size-exceeded" not in rec.calls[0]["headers"]
    emu.notifier.counters.clear()
    from sandbox.dataverse import notify  # shrink limits to exercise the stripping path quickly
    old = notify.WEBHOOK_LIMIT, notify.SERVICE_BUS_LIMIT
    notify.WEBHOOK_LIMIT, notify.SERVICE_BUS_LIMIT = 1500, 1200
    try:
        client.patch(f"msdyn_projects({rid})", json={"msdyn_description": big})
        wait_for(lambda: len(rec.calls) == 2 and len(published) == 2)
    finally:
        notify.WEBHOOK_LIMIT, notify.SERVICE_BUS_LIMIT = old
    call = rec.calls[1]
    assert call["headers"]["x-ms-dynamics-msg-size-exceeded"]
    ctx = json.loads(call["raw"])
    assert ctx["InputParameters"] == [] and ctx["PostEntityImages"] == [] and ctx["PrimaryEntityId"] == rid
    body, props = published[1]
    assert props["MessageMaxSizeExceeded"] and json.loads(body)["InputParameters"] == []


def test_service_bus_endpoint_gets_body_and_claim_properties(client: httpx.Client, emu: DataverseEmulator) -> None:
    published: list[tuple[bytes, dict[str, str]]] = []
    emu.register_service_bus(lambda body, props: published.append((body, props)), tables=["accounts"],
                             messages=["Create", "Delete"])
    client.post("cdm_companies", json={"cdm_companycode": "A"})
    rid = client.post("accounts?tag=t1", json={"name": "Contoso"}).headers["OData-EntityId"][-37:-1]
    client.patch(f"accounts({rid})", json={"name": "Contoso 2"})
    client.delete(f"accounts({rid})")
    wait_for(lambda: len(published) == 2)
    (b1, p1), (_b2, p2) = published
    claims = "http://schemas.microsoft.com/xrm/2011/Claims/"
    assert p1[claims + "EntityLogicalName"] == "account" and p1[claims + "RequestName"] == "Create"
    assert p2[claims + "RequestName"] == "Delete"
    for k in ("Organization", "User", "InitiatingUser"):
        assert p1[claims + k]
    ctx = json.loads(b1)
    assert ctx["PrimaryEntityId"] == rid and ctx["SharedVariables"] == [{"key": "tag", "value": "t1"}]


def test_admin_api_registers_webhooks(client: httpx.Client, emu: DataverseEmulator, server: RunningServer,
                                      receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    admin = server.url + "/_emulator/webhooks"
    r = client.post(admin, json={"url": url, "tables": ["cdm_companies"], "auth": "httpheader",
                                 "auth_values": {"X-Key": "secret-value"}})
    assert r.status_code == 201
    eid = r.json()["id"]
    listed = client.get(admin).json()["value"]
    assert [e["id"] for e in listed] == [eid] and "secret-value" not in json.dumps(listed)
    client.post("cdm_companies", json={"cdm_companycode": "A"})
    wait_for(lambda: len(rec.calls) == 1)
    assert client.delete(f"{admin}/{eid}").status_code == 204
    assert client.delete(f"{admin}/{eid}").status_code == 404
    assert client.post(admin, json={"url": "ftp://x"}).status_code == 400
    client.post("cdm_companies", json={"cdm_companycode": "B"})
    time.sleep(0.2)
    assert len(rec.calls) == 1


def test_create_naming_its_primary_id_lists_each_attribute_once(client: httpx.Client, emu: DataverseEmulator,
                                                                 receiver: tuple[Receiver, str]) -> None:
    # our own parser refuses an AttributeCollection with a repeated key, as the SDK's would
    rec, url = receiver
    emu.register_webhook(url, tables=["msdyn_projects"])
    pid = "40b80821-19bf-409c-a188-a898dd2f5418"
    client.post("msdyn_projects", json={"msdyn_projectid": pid, "msdyn_subject": "P2"}).raise_for_status()
    wait_for(lambda: len(rec.calls) == 1)
    ctx = json.loads(rec.calls[0]["raw"])
    keys = [kv["key"] for kv in ctx["InputParameters"][0]["value"]["Attributes"]]
    assert len(keys) == len(set(keys)) and "msdyn_projectid" in keys
    image_keys = [kv["key"] for kv in ctx["PostEntityImages"][0]["value"]["Attributes"]]
    assert len(image_keys) == len(set(image_keys))
