"""The fault middleware over real HTTP on loopback, wrapped around a tiny Starlette app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.faults import FaultCounters, FaultPlan, Throttle, fault_middleware
from sandbox.httpserver import RunningServer, serve_in_thread


@dataclass
class Knobs:
    plan: FaultPlan | None = None
    throttle: Throttle | None = None


def _throttled(retry_after: float) -> Response:
    return JSONResponse({"error": "throttled"}, 429, headers={"Retry-After": str(int(retry_after))})


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.method}")


@pytest.fixture()
def served() -> Iterator[tuple[RunningServer, Knobs, FaultCounters]]:
    knobs, counters = Knobs(), FaultCounters()
    inner = Starlette(routes=[Route("/{path:path}", hello, methods=["GET", "PATCH", "POST"])])
    app = fault_middleware(inner, lambda: knobs.plan, lambda: knobs.throttle, _throttled, counters)
    server = serve_in_thread(app)
    try:
        yield server, knobs, counters
    finally:
        server.stop()


def test_clean_requests_are_counted(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, _, counters = served
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/data/A").text == "hello GET"
        assert c.patch("/data/A").status_code == 200
    assert counters.snapshot()["requests"] == {"GET": {"200": 1}, "PATCH": {"200": 1}}


def test_error5xx_only_on_matching_method_and_path(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, counters = served
    knobs.plan = FaultPlan.parse("error5xx@PATCH/msdyn_actuals*=502")
    with httpx.Client(base_url=server.url) as c:
        r = c.patch("/api/data/v9.2/msdyn_actuals(1)")
        assert r.status_code == 502
        assert r.json()["error"]["message"]
        assert c.get("/api/data/v9.2/msdyn_actuals(1)").status_code == 200
        assert c.patch("/api/data/v9.2/accounts(1)").status_code == 200
    assert counters.faults["error5xx"] == 1


def test_reset_drops_the_connection(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, counters = served
    knobs.plan = FaultPlan.parse("reset@POST")
    with httpx.Client(base_url=server.url) as c:
        with pytest.raises(httpx.TransportError):
            c.post("/data/X", content=b"{}")
        assert c.get("/data/X").status_code == 200  # the server survives and serves the next request
    assert counters.faults["reset"] == 1


def test_timeout_hangs_then_drops(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, _ = served
    knobs.plan = FaultPlan.parse("timeout@GET=0.3")
    with httpx.Client(base_url=server.url) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/slow", timeout=0.1)
        with pytest.raises(httpx.TransportError):
            c.get("/slow", timeout=2)


def test_latency_delays(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, counters = served
    knobs.plan = FaultPlan.parse("latency=150")
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/x")
    assert r.status_code == 200
    assert r.elapsed.total_seconds() >= 0.14
    assert counters.faults["latency"] == 1


def test_throttle_answers_429_with_retry_after(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, counters = served
    knobs.throttle = Throttle(requests_per_window=2, window_seconds=60)
    with httpx.Client(base_url=server.url) as c:
        statuses = [c.get("/x").status_code for _ in range(4)]
        last = c.get("/x")
    assert statuses == [200, 200, 429, 429]
    assert last.status_code == 429 and 1 <= int(last.headers["Retry-After"]) <= 60
    assert counters.throttled == 3


def test_control_paths_are_exempt(served: tuple[RunningServer, Knobs, FaultCounters]) -> None:
    server, knobs, counters = served
    knobs.plan = FaultPlan.parse("error5xx")
    knobs.throttle = Throttle(requests_per_window=1, window_seconds=60)
    with httpx.Client(base_url=server.url) as c:
        assert all(c.get("/_emulator/stats").status_code == 200 for _ in range(3))
        assert c.get("/data/X").status_code == 503
    assert counters.snapshot()["requests_total"] == 1
