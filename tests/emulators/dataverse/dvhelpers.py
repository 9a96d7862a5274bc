"""Shared assertions for the Dataverse emulator tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error(r: httpx.Response, status: int, code: str | None = None, contains: str = "") -> dict[str, Any]:
    """The response is the real Dataverse error shape with the expected status/code/message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) >= {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert contains in body["error"]["message"], body
    return dict(body["error"])
