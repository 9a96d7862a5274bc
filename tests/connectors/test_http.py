import json
import logging

import httpx
import pytest

from shared.connectors import batch
from shared.connectors.auth import StaticToken
from shared.connectors.concurrency import AdaptiveLimiter
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.errors import Auth, ForeignLink, LookupTargetMissing, Service, Throttled, Transient
from shared.connectors.http import ServiceClient
from shared.connectors.retry import RetryPolicy
from shared.connectors.writes import Upsert

ROOT = "https://org.crm.dynamics.com/api/data/v9.2/"


class Tokens:
    def __init__(self, *tokens):
        self.tokens = list(tokens)
        self.calls = []

    async def token(self, *, rejected=None):
        self.calls.append(rejected)
        if rejected is not None and self.tokens[0] == rejected:
            self.tokens.pop(0)
        return self.tokens[0]


def client(handler, tokens=None, budget=2.0):
    return ServiceClient(
        service=Service.DATAVERSE, service_root=ROOT, tokens=tokens or StaticToken("tok"),
        retry=RetryPolicy(budget, initial=0.01, cap=0.02), client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        limiter=AdaptiveLimiter(4),
    )


async def test_401_refreshes_once_then_succeeds():
    seen = []

    def handler(req):
        seen.append(req.headers["authorization"])
        return httpx.Response(200, json={}) if req.headers["authorization"] == "Bearer new" else httpx.Response(401)

    tokens = Tokens("old", "new")
    await client(handler, tokens).request("GET", "accounts")
    assert seen == ["Bearer old", "Bearer new"]
    assert tokens.calls == [None, "old"]


async def test_second_401_is_auth_error_without_retry_loop():
    count = 0

    def handler(req):
        nonlocal count
        count += 1
        return httpx.Response(401, json={"error": {"code": "0x80072560", "message": "no"}})

    with pytest.raises(Auth) as info:
        await client(handler, Tokens("a", "b", "c")).request("GET", "accounts")
    assert count == 2 and info.value.status == 401


async def test_throttle_retried_and_limiter_halved():
    answers = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={"ok": 1})]
    c = client(lambda req: answers.pop(0))
    r = await c.request("GET", "accounts")
    assert r.json() == {"ok": 1} and c.limiter.limit == 2


async def test_connection_errors_are_transient():
    def handler(req):
        raise httpx.ConnectError("refused")

    with pytest.raises(Transient):
        await client(handler, budget=0.1).request("GET", "accounts")


async def test_foreign_link_refused_and_logged(caplog):
    c = client(lambda req: httpx.Response(200, json={}))
    with caplog.at_level(logging.WARNING, logger="dualsync.connectors"), pytest.raises(ForeignLink):
        await c.request("GET", "https://evil.example.com/api/data/v9.2/accounts?$skiptoken=1")
    assert "evil.example.com" in caplog.text
    for other in ("http://org.crm.dynamics.com/api/data/v9.2/x", "https://org.crm.dynamics.com:8443/x"):
        with pytest.raises(ForeignLink):
            c.url(other)
    assert c.url("https://ORG.crm.dynamics.com/api/data/v9.2/x?$skiptoken=2").endswith("x?$skiptoken=2")


async def test_logs_have_method_path_status_attempt_but_no_query_or_token(caplog):
    answers = [httpx.Response(503), httpx.Response(204)]
    c = client(lambda req: answers.pop(0), tokens=StaticToken("very-secret-token"))
    with caplog.at_level(logging.DEBUG):
        await c.request("PATCH", "accounts(accountnumber='A1')?code=query-key-123", json_body={"name": "Row Content"})
    records = [r for r in caplog.records if r.name == "dualsync.connectors"]
    assert [(r.method, r.status, r.attempt) for r in records] == [("PATCH", 503, 1), ("PATCH", 204, 2)]
    assert all(r.path == "/api/data/v9.2/accounts(accountnumber='A1')" for r in records)
    for secret in ("very-secret-token", "query-key-123", "Row Content"):
        assert secret not in caplog.text


async def test_lookup_target_missing_is_typed():
    def handler(req):
        return httpx.Response(404, json={"error": {"code": "0x80040217", "message": (
            "A record with the specified key values does not exist in msdyn_project entity")}})

    dv = DataverseConnector(client(handler))
    with pytest.raises(LookupTargetMissing) as info:
        await dv.upsert("msdyn_projecttasks", {"msdyn_name": "T"}, {"msdyn_subject": "x"},
                        lookups={"msdyn_customer": ("accounts", {"accountnumber": "A"}),
                                 "msdyn_project": ("msdyn_projects", {"msdyn_name": "P'1"})})
    assert info.value.entity_set == "msdyn_projects"
    assert info.value.key == "(msdyn_name='P''1')"


def test_batch_round_trip_parse():
    ctype, body = batch.build([[batch.Part("PATCH", ROOT + "accounts(1)", {"a": "é"}, {"If-Match": "*"}),
                                batch.Part("DELETE", ROOT + "accounts(2)")]], atomic=True)
    assert ctype.startswith("multipart/mixed; boundary=batch_")
    text = body.decode()
    assert "changeset_" in text and "If-Match: *" in text and "Content-ID: 2" in text
    response = (
        "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_y\r\n\r\n"
        "--changesetresponse_y\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-EntityId: x\r\n\r\n\r\n"
        "--changesetresponse_y--\r\n"
        "--batchresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
        + json.dumps({"error": {"code": "0x80044331", "message": "too long"}}) + "\r\n--batchresponse_x--\r\n"
    )
    parts = batch.parse("multipart/mixed; boundary=batchresponse_x", response.encode())
    assert [(p.status, p.ok) for p in parts] == [(204, True), (400, False)]
    assert parts[0].headers["odata-entityid"] == "x"
    assert parts[1].body["error"]["code"] == "0x80044331"


async def test_batch_part_throttled_is_resent_alone():
    sent = []

    def handler(req):
        text = req.content.decode()
        n = text.count("HTTP/1.1")
        sent.append(n)
        parts = []
        for i in range(n):
            status = "429 Too Many Requests" if (len(sent) == 1 and i == 0) else "204 No Content"
            parts.append(f"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 {status}\r\nRetry-After: 0\r\n\r\n\r\n")
        return httpx.Response(200, headers={"Content-Type": "multipart/mixed; boundary=b"},
                              content=("".join(parts) + "--b--\r\n").encode())

    dv = DataverseConnector(client(handler), batch_size=10)
    writes = [Upsert(f"00000000-0000-0000-0000-00000000000{i}", {"name": str(i)}) for i in range(3)]
    results = await dv.write_batch("accounts", writes, mode="batch")
    assert all(r.ok for r in results) and sent == [3, 1]


def test_throttled_repr_has_no_body_contents():
    e = Throttled(retry_after=1, service="dataverse", method="GET", path="/p", status=429)
    assert "retry" not in repr(e).lower() or "429" in repr(e)
