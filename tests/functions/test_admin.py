"""The admin HTTP functions, called directly with constructed requests over a real SQLite state store
and a real local broker in tmp_path: status codes, bodies, and what replay puts on the broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

import functions.admin as admin
from shared.events.notification import ChangeNotification, Origin
from shared.operations import LocalBrokerProbe, Operations, SuccessMarker
from shared.runtime import get_runtime
from shared.state.sqlite import SqliteStateStore
from shared.transport.local import LocalBrokerTransport
from shared.transport.messages import REPLAY_OF, subscription_path
from tests.functions.test_admin_world import TOPIC, build_broker, notification, seed_error


@pytest.fixture
async def ops(tmp_path, monkeypatch):
    catalog = get_runtime().catalog
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    broker = await build_broker(tmp_path / "broker.sqlite", catalog)
    ops = Operations(catalog, state, LocalBrokerTransport(broker), TOPIC, backlog=LocalBrokerProbe(broker))

    async def get_operations() -> Operations:
        return ops

    monkeypatch.setattr(admin, "get_operations", get_operations)
    yield ops
    await state.close()
    await broker.close()


async def call(function: Any, method: str, url: str, *, route: dict[str, str] | None = None,
               params: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, Any]:
    req = func.HttpRequest(method, url, route_params=route or {}, params=params or {}, body=body,
                           headers={"content-type": "application/json"})
    resp = await function.build().get_user_function()(req)
    assert resp.mimetype == "application/json"
    return resp.status_code, json.loads(resp.get_body())


def broker_of(ops: Operations):
    assert isinstance(ops.transport, LocalBrokerTransport)
    return ops.transport.broker


async def on_subscription(ops: Operations, map_name: str) -> list[ChangeNotification]:
    messages = await broker_of(ops).peek(subscription_path(TOPIC, map_name), 100)
    return [ChangeNotification.from_message(m.body) for m in messages]


# --- status, pause, resume --------------------------------------------------------------------------
async def test_status_reports_state_errors_backlog_and_last_success(ops):
    broker = broker_of(ops)
    await broker.send(TOPIC, [notification("projects", 1).to_message(), notification("projects", 2).to_message()])
    await broker.schedule(TOPIC, notification("projects", 3).to_message(), datetime.now(UTC) + timedelta(hours=1))
    await seed_error(ops.state, "actuals", 7)
    await SuccessMarker(ops.state).mark("projects", datetime(2025, 5, 1, 12, 0, tzinfo=UTC))

    code, body = await call(admin.ops_status, "GET", "/api/ops/status")
    assert code == 200
    assert set(body["maps"]) == {m.name for m in get_runtime().catalog}
    projects, actuals = body["maps"]["projects"], body["maps"]["actuals"]
    assert projects["state"] == "running" and projects["since"] is None
    assert projects["backlog"] == {"active": 2, "scheduled": 1, "dead_letters": 0}
    assert projects["last_success"] == "2025-05-01T12:00:00+00:00"
    assert actuals["last_success"] is None  # never succeeded: unknown, not a made-up time
    assert (actuals["open_errors"], projects["open_errors"], body["open_errors"]) == (1, 0, 1)


async def test_backlog_of_a_subscription_the_broker_lacks_is_null_not_zero(ops, tmp_path):
    from shared.transport.local import LocalBroker

    bare = LocalBroker(tmp_path / "bare.sqlite")
    await bare.create_topic(TOPIC)
    ops.probe = LocalBrokerProbe(bare)
    code, body = await call(admin.ops_status, "GET", "/api/ops/status")
    assert code == 200
    assert body["maps"]["projects"]["backlog"] == {"active": None, "scheduled": None, "dead_letters": None}
    await bare.close()


async def test_pause_and_resume(ops):
    code, body = await call(admin.ops_pause, "POST", "/api/ops/maps/projects/pause", route={"map": "projects"},
                            body=b'{"reason": "finance upgrade"}')
    assert (code, body) == (200, {"map": "projects", "state": "paused", "reason": "finance upgrade"})
    _, status = await call(admin.ops_status, "GET", "/api/ops/status")
    assert status["maps"]["projects"]["state"] == "paused" and status["paused"] == ["projects"]
    assert status["maps"]["projects"]["reason"] == "finance upgrade" and status["maps"]["projects"]["since"]
    assert (await ops.state.get_map_state("projects")).paused

    code, body = await call(admin.ops_resume, "POST", "/api/ops/maps/projects/resume", route={"map": "projects"})
    assert (code, body) == (200, {"map": "projects", "state": "running"})
    assert not (await ops.state.get_map_state("projects")).paused


async def test_pause_without_a_body_gives_a_default_reason(ops):
    code, body = await call(admin.ops_pause, "POST", "/", route={"map": "actuals"})
    assert code == 200 and body["reason"] == "paused by an operator"


@pytest.mark.parametrize(("payload", "names"), [
    (b"{not json", "not valid JSON"),
    (b'["reason"]', "JSON object"),
    (b'{"reason": 5}', "reason"),
    (b'{"reason": "x", "until": "tomorrow"}', "until"),
    (b'{"reason": "' + b"x" * 20_000 + b'"}', "bytes"),
])
async def test_pause_with_a_bad_body_is_400_and_changes_nothing(ops, payload, names):
    code, body = await call(admin.ops_pause, "POST", "/", route={"map": "projects"}, body=payload)
    assert code == 400 and body["error"] == "bad-request" and names in body["message"]
    assert not (await ops.state.get_map_state("projects")).paused


@pytest.mark.parametrize("function", ["ops_pause", "ops_resume", "ops_replay_map"])
async def test_unknown_map_is_404_naming_it(ops, function):
    code, body = await call(getattr(admin, function), "POST", "/", route={"map": "no_such_map"})
    assert code == 404 and body["map"] == "no_such_map" and "no_such_map" in body["message"]
    assert await ops.state.list_map_states() == []


# --- errors -----------------------------------------------------------------------------------------
async def test_list_and_show_errors(ops):
    first = await seed_error(ops.state, "projects", 1)
    second = await seed_error(ops.state, "actuals", 2)

    code, body = await call(admin.ops_errors, "GET", "/api/ops/errors")
    assert code == 200 and body["count"] == 2 and {e["id"] for e in body["errors"]} == {first, second}
    code, body = await call(admin.ops_errors, "GET", "/", params={"map": "projects", "limit": "5"})
    assert code == 200 and [e["id"] for e in body["errors"]] == [first]

    code, body = await call(admin.ops_error, "GET", f"/api/ops/errors/{first}", route={"id": first})
    assert code == 200
    assert (body["id"], body["map"], body["classification"], body["status"]) == (first, "projects", "mapping", "open")
    assert body["reason"] == "bad value in row 1" and body["payload"]["map"] == "projects"


@pytest.mark.parametrize(("params", "status", "names"), [
    ({"status": "broken"}, 400, "broken"),
    ({"limit": "ten"}, 400, "ten"),
    ({"limit": "0"}, 400, "limit"),
    ({"limit": "100000"}, 400, "limit"),
    ({"colour": "red"}, 400, "colour"),
    ({"map": "no_such_map"}, 404, "no_such_map"),
])
async def test_bad_error_filters(ops, params, status, names):
    code, body = await call(admin.ops_errors, "GET", "/", params=params)
    assert code == status and names in body["message"]


async def test_error_status_filter(ops):
    kept = await seed_error(ops.state, "projects", 1)
    gone = await seed_error(ops.state, "projects", 2)
    await call(admin.ops_dismiss, "POST", "/", route={"id": gone})
    _, open_only = await call(admin.ops_errors, "GET", "/")
    _, dismissed = await call(admin.ops_errors, "GET", "/", params={"status": "dismissed"})
    _, every = await call(admin.ops_errors, "GET", "/", params={"status": "all"})
    assert [e["id"] for e in open_only["errors"]] == [kept]
    assert [e["id"] for e in dismissed["errors"]] == [gone]
    assert {e["id"] for e in every["errors"]} == {kept, gone}


@pytest.mark.parametrize("function", ["ops_error", "ops_replay_error", "ops_dismiss"])
async def test_unknown_error_id_is_404(ops, function):
    method = "GET" if function == "ops_error" else "POST"
    code, body = await call(getattr(admin, function), method, "/", route={"id": "deadbeef"})
    assert code == 404 and body["error"] == "unknown-error" and "deadbeef" in body["message"]


# --- replay and dismiss -----------------------------------------------------------------------------
async def test_replay_one_republishes_to_the_broker(ops):
    error_id = await seed_error(ops.state, "projects", 1)
    code, body = await call(admin.ops_replay_error, "POST", "/", route={"id": error_id})
    assert code == 200 and body["status"] == "replayed"

    [message] = await broker_of(ops).peek(subscription_path(TOPIC, "projects"), 10)
    note = ChangeNotification.from_message(message.body)
    original = notification("projects", 1)
    assert (note.map, note.record, note.attempt, note.origin) == ("projects", original.record, 0, Origin.REPLAY)
    assert message.session_id == original.session_id  # same session: in order with the record's changes
    assert message.message_id == body["message_id"]
    assert message.application_properties[REPLAY_OF] == original.message_id
    assert (await ops.state.get_error(error_id)).status.value == "replayed"

    code, body = await call(admin.ops_replay_error, "POST", "/", route={"id": error_id})
    assert code == 409 and "replayed" in body["message"]
    assert len(await on_subscription(ops, "projects")) == 1


async def test_a_replay_that_fails_again_can_be_replayed_again(ops):
    """The second failure is a new record; its replay must not be eaten by duplicate detection."""
    first = await seed_error(ops.state, "projects", 1)
    _, body = await call(admin.ops_replay_error, "POST", "/", route={"id": first})
    replayed = (await broker_of(ops).peek(subscription_path(TOPIC, "projects"), 10))[0]
    # the sync service keeps the replayed delivery's failure under the delivery's message id
    from shared.state.models import ErrorReport

    again = await ops.state.record_error(ErrorReport(
        map="projects", key=notification("projects", 1).record, classification="mapping", reason="still bad",
        payload=json.loads(replayed.body), message_id=replayed.message_id, session_id=replayed.session_id))
    assert again.id != first
    code, body = await call(admin.ops_replay_error, "POST", "/", route={"id": again.id})
    assert code == 200
    assert len(await on_subscription(ops, "projects")) == 2


async def test_replay_per_map_and_all(ops):
    p1 = await seed_error(ops.state, "projects", 1)
    p2 = await seed_error(ops.state, "projects", 2)
    a1 = await seed_error(ops.state, "actuals", 3)
    code, body = await call(admin.ops_replay_map, "POST", "/", route={"map": "projects"})
    assert code == 200 and sorted(body["replayed"]) == sorted([p1, p2]) and body["not_replayable"] == []
    assert len(await on_subscription(ops, "projects")) == 2 and await on_subscription(ops, "actuals") == []

    code, body = await call(admin.ops_replay_all, "POST", "/api/ops/errors/replay")
    assert (code, body) == (200, {"replayed": [a1], "not_replayable": []})
    assert [n.record for n in await on_subscription(ops, "actuals")] == [notification("actuals", 3).record]
    assert (await call(admin.ops_errors, "GET", "/"))[1]["count"] == 0


async def test_replay_all_reports_what_cannot_be_replayed(ops):
    from shared.state.models import ErrorReport

    good = await seed_error(ops.state, "projects", 1)
    bad = (await ops.state.record_error(ErrorReport(
        map="projects", key="?", classification="bad-message", reason="unreadable", payload="garbage"))).id
    code, body = await call(admin.ops_replay_all, "POST", "/")
    assert (code, body) == (200, {"replayed": [good], "not_replayable": [bad]})
    assert (await ops.state.get_error(bad)).status.value == "open"


async def test_dismiss(ops):
    error_id = await seed_error(ops.state, "projects", 1)
    code, body = await call(admin.ops_dismiss, "POST", "/", route={"id": error_id})
    assert (code, body) == (200, {"id": error_id, "status": "dismissed", "map": "projects"})
    code, _ = await call(admin.ops_replay_error, "POST", "/", route={"id": error_id})
    assert code == 409
    assert await on_subscription(ops, "projects") == []


async def test_broker_failure_is_503_and_the_error_stays_open(ops, tmp_path):
    from shared.transport.local import LocalBroker

    error_id = await seed_error(ops.state, "projects", 1)
    ops.transport = LocalBrokerTransport(LocalBroker(tmp_path / "empty.sqlite"))  # no topic there
    code, body = await call(admin.ops_replay_error, "POST", "/", route={"id": error_id})
    assert code == 503 and body["error"] == "backend-unavailable"
    assert (await ops.state.get_error(error_id)).status.value == "open"
    await ops.transport.close()


# --- bindings ---------------------------------------------------------------------------------------
EXPECTED_ROUTES = {
    "ops_status": ("ops/status", ["GET"]),
    "ops_pause": ("ops/maps/{map}/pause", ["POST"]),
    "ops_resume": ("ops/maps/{map}/resume", ["POST"]),
    "ops_errors": ("ops/errors", ["GET"]),
    "ops_error": ("ops/errors/{id}", ["GET"]),
    "ops_replay_error": ("ops/errors/{id}/replay", ["POST"]),
    "ops_replay_map": ("ops/maps/{map}/replay", ["POST"]),
    "ops_replay_all": ("ops/errors/replay", ["POST"]),
    "ops_dismiss": ("ops/errors/{id}/dismiss", ["POST"]),
    "ops_initial_sync": ("ops/maps/{map}/initial-sync", ["POST"]),
}


def test_admin_functions_have_admin_auth_and_ops_routes(app_functions):
    ops_functions = {name: f for name, f in app_functions.items() if name.startswith("ops_")}
    assert set(EXPECTED_ROUTES) <= set(ops_functions)
    for name, function in ops_functions.items():
        [binding] = [b for b in json.loads(function.get_function_json())["bindings"] if b["type"] == "httpTrigger"]
        assert binding["authLevel"] == "ADMIN", name
        assert binding["route"].startswith("ops/") and not binding["route"].startswith("admin"), name
        if name in EXPECTED_ROUTES:
            assert (binding["route"], binding["methods"]) == EXPECTED_ROUTES[name], name
