"""HTTP triggers over real HTTP: auth levels and keys, routes, methods, request and response, outputs."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from sandbox.host import DevHost, HostKeys
from shared.transport.local import LocalBroker
from tests.host.conftest import make_host
from tests.host.testapp import Record

UNAUTHORIZED = {"error": "Unauthorized", "status": 401}


async def test_anonymous_function_needs_no_key(client):
    r = await client.get("/api/hello/ada")
    assert (r.status_code, r.text) == (200, "hello ada")


@pytest.mark.parametrize("presented", [None, "", "wrong-key", "x" * 43])
async def test_function_level_refuses_missing_or_wrong_key(host: DevHost, client, presented):
    headers = {} if presented is None else {"x-functions-key": presented}
    r = await client.get("/api/items/1", headers=headers)
    assert r.status_code == 401
    assert r.json() == UNAUTHORIZED
    assert host.function_key not in r.text and host.master_key not in r.text
    r = await client.get("/api/items/1", params={} if presented is None else {"code": presented})
    assert r.status_code == 401


async def test_function_level_takes_function_or_master_key_in_header_or_query(host: DevHost, client):
    for key in (host.function_key, host.master_key):
        assert (await client.get("/api/items/1", headers={"x-functions-key": key})).status_code == 200
        assert (await client.get("/api/items/1", params={"code": key})).status_code == 200


async def test_admin_level_takes_only_the_master_key(host: DevHost, client):
    r = await client.post("/api/admin/op", headers={"x-functions-key": host.function_key})
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    r = await client.post("/api/admin/op", params={"code": host.master_key})
    assert r.status_code == 200
    assert r.json() == {"function": "admin_op"}  # the context argument is filled


async def test_request_reaches_the_function_and_response_comes_back(host: DevHost, client):
    r = await client.get("/api/items/42", params={"q": "a b", "code": host.function_key},
                         headers={"x-test": "yes"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-served-by"] == "items"
    seen = r.json()
    assert seen["method"] == "GET" and seen["route"] == {"id": "42"} and seen["header"] == "yes"
    assert seen["params"]["q"] == "a b" and seen["body"] == ""
    assert seen["url"].startswith(host.url + "/api/items/42?")


async def test_route_constraint_and_methods(host: DevHost, client):
    key = {"x-functions-key": host.function_key}
    assert (await client.get("/api/items/abc", headers=key)).status_code == 404  # {id:int}
    assert (await client.delete("/api/items/1", headers=key)).status_code == 405
    assert (await client.get("/api/nothing-here", headers=key)).status_code == 404
    assert (await client.get("/items/1", headers=key)).status_code == 404  # the route prefix is needed


async def test_output_binding_is_sent_to_the_broker(host: DevHost, client, broker: LocalBroker):
    r = await client.post("/api/items/7", content=b'{"x": 1}', headers={"x-functions-key": host.function_key})
    assert r.status_code == 201 and r.json()["body"] == '{"x": 1}'
    [message] = await broker.peek("host-test-out")
    assert json.loads(message.body) == {"item": "7"}
    assert host.stats()["output_messages"] == 1


async def test_a_function_that_raises_answers_500_without_details(host: DevHost, client):
    r = await client.get("/api/boom")
    assert r.status_code == 500
    assert "secret detail" not in r.text
    assert host.stats()["http_requests"].get("500") == 1


async def test_keys_file_is_private_and_kept_across_restarts(tmp_path, record: Record):
    first = make_host(record, tmp_path)
    await first.start()
    keys = (first.function_key, first.master_key)
    await first.stop()
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(keys)) == 2 and all(len(k) >= 40 for k in keys)
    again = make_host(record, tmp_path)
    await again.start()
    try:
        assert (again.function_key, again.master_key) == keys
        async with httpx.AsyncClient(base_url=again.url) as c:
            assert (await c.get("/api/items/1", headers={"x-functions-key": keys[0]})).status_code == 200
    finally:
        await again.stop()


def test_keys_compare_every_key():
    keys = HostKeys(master_key="m" * 43, function_keys={"default": "f" * 43, "ci": "c" * 43})
    from sandbox.host import AuthLevel

    assert keys.allows(AuthLevel.FUNCTION, "c" * 43) and keys.allows(AuthLevel.FUNCTION, "m" * 43)
    assert not keys.allows(AuthLevel.ADMIN, "c" * 43) and keys.allows(AuthLevel.ADMIN, "m" * 43)
    assert not keys.allows(AuthLevel.FUNCTION, "f" * 42) and keys.allows(AuthLevel.ANONYMOUS, None)
