"""Auth over real HTTP: host keys on the webhooks and the admin API, the shared secret, constant-time
comparison, and no secret in any answer or log line."""

from __future__ import annotations

import ast
import hmac
import inspect
import json
import logging
import textwrap
from typing import Any

import pytest

from sandbox.host.keys import HostKeys
from shared.events import intake
from tests.events.samples import context_body, event_body, webhook_headers
from tests.hostile.conftest import LiveApp
from tests.hostile.requests import DATAVERSE, FINANCE, ROUTES

HOST_401 = {"error": "Unauthorized", "status": 401}
SETTING_NAMES = ("DUALSYNC", "webhook_secret", "WEBHOOK_SECRET", "static_token", "masterKey", "functionKeys")
BODIES = {DATAVERSE: context_body("Update"), FINANCE: event_body("Update")}


def _headers(route: str) -> dict[str, str]:
    return webhook_headers() if route == DATAVERSE else {"Content-Type": "application/json"}


def _nothing_leaked(app: LiveApp, text: str, *presented: str) -> None:
    for secret in (*app.secrets(), *presented):
        assert secret not in text
    for name in SETTING_NAMES:
        assert name not in text
    assert "Traceback" not in text and "File \"" not in text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("how", ["no key", "wrong key in header", "wrong key in code", "empty key",
                                 "key with a suffix", "key prefix"])
def test_webhook_without_the_function_key_is_401_and_publishes_nothing(live_app, route, how):
    key = live_app.function_key
    presented = {"no key": None, "wrong key in header": "not-the-key", "wrong key in code": None,
                 "empty key": "", "key with a suffix": key + "x", "key prefix": key[:-1]}[how]
    headers = {**_headers(route), "x-dualsync-key": live_app.secret}
    if presented is not None:
        headers["x-functions-key"] = presented
    before = live_app.published()
    params = {"code": "not-the-key"} if how == "wrong key in code" else {}
    response = live_app.client.post(f"/api/{route}", params=params, content=BODIES[route], headers=headers)
    assert response.status_code == 401
    assert response.json() == HOST_401
    echoed = [presented] if presented and len(presented) > 8 else []  # a presented key is never echoed
    _nothing_leaked(live_app, response.text + json.dumps(dict(response.headers)), *echoed)
    assert live_app.published() == before


@pytest.mark.parametrize("route", ROUTES)
def test_webhook_with_the_function_key_or_the_master_key_gets_through(live_app, route):
    for key in (live_app.function_key, live_app.master_key):
        response = live_app.client.post(f"/api/{route}", params={"code": key}, content=BODIES[route],
                                        headers={**_headers(route), "x-dualsync-key": live_app.secret})
        assert response.status_code == 202, response.text


@pytest.mark.parametrize("path", ["ops/status", "ops/errors"])
def test_admin_api_wants_the_master_key(live_app, path):
    url = f"/api/{path}"
    nothing = live_app.client.get(url)
    function = live_app.client.get(url, headers={"x-functions-key": live_app.function_key})
    function_code = live_app.client.get(url, params={"code": live_app.function_key})
    wrong = live_app.client.get(url, headers={"x-functions-key": live_app.master_key + "x"})
    for refused in (nothing, function, function_code, wrong):
        assert refused.status_code == 401 and refused.json() == HOST_401
        _nothing_leaked(live_app, refused.text)
    master = live_app.client.get(url, headers={"x-functions-key": live_app.master_key})
    assert master.status_code == 200, master.text
    _nothing_leaked(live_app, master.text)


def test_admin_pause_with_a_function_key_changes_nothing(live_app):
    pause = live_app.client.post("/api/ops/maps/projects/pause", json={"reason": "hostile"},
                                 headers={"x-functions-key": live_app.function_key})
    assert pause.status_code == 401
    status = live_app.client.get("/api/ops/status", headers={"x-functions-key": live_app.master_key})
    assert status.status_code == 200
    assert "hostile" not in status.text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("secret", [None, "", "wrong", "WRONG-CASE", "prefix"])
def test_wrong_or_missing_shared_secret_is_401_with_one_message_and_nothing_published(live_app, route, secret):
    given = live_app.secret[:5] if secret == "prefix" else live_app.secret.upper() if secret == "WRONG-CASE" \
        else secret
    headers = {**_headers(route), "x-functions-key": live_app.function_key}
    if given is not None:
        headers["x-dualsync-key"] = given
    before = live_app.published()
    response = live_app.client.post(f"/api/{route}", content=BODIES[route], headers=headers)
    assert response.status_code == 401, response.text
    # missing and wrong read the same: the answer is no oracle for the secret
    assert response.json() == {"error": "unauthorized", "status": 401,
                               "message": "missing or wrong x-dualsync-key header"}
    _nothing_leaked(live_app, response.text)
    assert live_app.published() == before


def test_the_secret_header_name_is_case_insensitive(live_app):
    response = live_app.post(DATAVERSE, BODIES[DATAVERSE], {**webhook_headers(), "X-DualSync-Key": live_app.secret},
                             secret=False)
    assert response.status_code == 202, response.text


class _Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self.real(a, b)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def test_host_keys_are_compared_with_compare_digest_against_every_key(live_app, monkeypatch):
    spy = _Spy()
    monkeypatch.setattr(hmac, "compare_digest", spy)
    live_app.client.post(f"/api/{DATAVERSE}", content=BODIES[DATAVERSE],
                         headers={**_headers(DATAVERSE), "x-functions-key": "wrong-key"})
    compared = {_as_bytes(b) for a, b in spy.calls if _as_bytes(a) == b"wrong-key"}
    # the master key and every function key, no early exit after a mismatch
    assert compared == {live_app.master_key.encode(), live_app.function_key.encode()}


def test_the_shared_secret_is_compared_with_compare_digest(live_app, monkeypatch):
    spy = _Spy()
    monkeypatch.setattr(hmac, "compare_digest", spy)
    response = live_app.post(DATAVERSE, BODIES[DATAVERSE], {**webhook_headers(), "x-dualsync-key": "guess"})
    assert response.status_code == 401
    assert (b"guess", live_app.secret.encode()) in [(_as_bytes(a), _as_bytes(b)) for a, b in spy.calls]


@pytest.mark.parametrize("function", [intake.check_secret, HostKeys.allows])
def test_no_plain_comparison_touches_a_secret(function):
    # timing-free: the comparison code has no ==, !=, in or startswith on values; compare_digest only
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "compare_digest" in calls
    assert not {"startswith", "endswith", "find", "index"} & set(calls)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                # only identity checks against None / enum members are allowed
                assert isinstance(op, ast.Is | ast.IsNot), ast.unparse(node)
                assert isinstance(right, ast.Constant | ast.Attribute), ast.unparse(node)


def test_failing_requests_log_no_secret(live_app, caplog):
    caplog.set_level(logging.DEBUG)
    attempts = [
        (DATAVERSE, {"x-functions-key": "wrong"}),
        (FINANCE, {"x-functions-key": live_app.function_key, "x-dualsync-key": "wrong"}),
        (DATAVERSE, {"x-functions-key": live_app.function_key}),
    ]
    for route, headers in attempts:
        response = live_app.client.post(f"/api/{route}", content=BODIES[route], headers={**_headers(route), **headers})
        assert response.status_code == 401
    for path in ("ops/status", "ops/errors/42/replay"):
        assert live_app.client.post(f"/api/{path}", headers={"x-functions-key": live_app.function_key}).status_code \
            in (401, 405)
    # a request that passes, too: its log lines may name the route, never a key
    assert live_app.post(DATAVERSE, BODIES[DATAVERSE], webhook_headers()).status_code == 202
    assert caplog.records, "nothing was logged at DEBUG: the check below would be vacuous"
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    for secret in live_app.secrets():
        assert secret not in logged
