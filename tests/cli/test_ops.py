"""The operator CLI (errors, pause, resume, status) against a real SQLite state store and local broker in
tmp_path, named by environment variables as in production: --json parsed, exit codes, messages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.catalog import load_catalog
from shared.events.notification import ChangeNotification, Origin
from shared.settings import DEFAULT_MAPS_DIR
from shared.state.models import ErrorReport
from shared.state.sqlite import SqliteStateStore
from shared.transport.local import LocalBroker
from shared.transport.messages import subscription_path
from tests.functions.test_admin_world import TOPIC, build_broker, notification, seed_error

runner = CliRunner()


class World:
    def __init__(self, root: Path):
        self.state_path = root / "state.sqlite"
        self.broker_path = root / "broker.sqlite"
        self.env = {"DUALSYNC_STATE_BACKEND": "sqlite", "DUALSYNC_STATE_SQLITE_PATH": str(self.state_path),
                    "DUALSYNC_TRANSPORT": "local", "DUALSYNC_BROKER_PATH": str(self.broker_path),
                    "DUALSYNC_CHANGE_TOPIC": TOPIC}

    def seed(self, *failures: tuple[str, int]) -> list[str]:
        async def go() -> list[str]:
            await (await build_broker(self.broker_path, load_catalog(DEFAULT_MAPS_DIR))).close()
            state = SqliteStateStore(self.state_path)
            await state.open()
            try:
                return [await seed_error(state, m, n) for m, n in failures]
            finally:
                await state.close()

        return asyncio.run(go())

    def on_subscription(self, map_name: str) -> list[ChangeNotification]:
        async def go() -> list[ChangeNotification]:
            async with LocalBroker(self.broker_path) as broker:
                messages = await broker.peek(subscription_path(TOPIC, map_name), 100)
            return [ChangeNotification.from_message(m.body) for m in messages]

        return asyncio.run(go())

    def invoke(self, *args: str, **env: str | None):
        return runner.invoke(app, list(args), env={**self.env, **env})


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_status_json_and_table(world):
    world.seed(("actuals", 1))
    result = world.invoke("status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["maps"]["actuals"]["open_errors"] == 1 and status["open_errors"] == 1
    assert status["maps"]["projects"] == {
        "state": "running", "since": None, "reason": "", "last_success": None, "open_errors": 0,
        "backlog": {"active": 0, "scheduled": 0, "dead_letters": 0}}

    table = world.invoke("status")
    assert table.exit_code == 0
    assert "contract_line_milestones" in table.stdout and "0 paused, 1 open error(s)" in table.stdout


def test_pause_then_resume(world):
    world.seed()
    result = world.invoke("pause", "actuals", "--reason", "Finance upgrade", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"map": "actuals", "state": "paused", "reason": "Finance upgrade"}
    status = json.loads(world.invoke("status", "--json").stdout)
    assert status["paused"] == ["actuals"] and status["maps"]["actuals"]["reason"] == "Finance upgrade"
    assert "paused" in world.invoke("status").stdout

    result = world.invoke("resume", "actuals")
    assert result.exit_code == 0 and "actuals: running" in result.stdout
    assert json.loads(world.invoke("status", "--json").stdout)["paused"] == []


def test_unknown_map_exits_2_naming_it(world):
    world.seed()
    for args in (["pause", "no_such_map"], ["resume", "no_such_map"], ["errors", "list", "--map", "no_such_map"],
                 ["errors", "replay", "--map", "no_such_map"]):
        result = world.invoke(*args)
        assert result.exit_code == 2, args
        assert "no_such_map" in result.stderr and "dualsync maps list" in result.stderr


def test_errors_list_show_and_filters(world):
    first, second = world.seed(("projects", 1), ("actuals", 2))
    result = world.invoke("errors", "list", "--json")
    assert result.exit_code == 0, result.output
    assert {e["id"] for e in json.loads(result.stdout)} == {first, second}
    only = json.loads(world.invoke("errors", "list", "--map", "projects", "--json").stdout)
    assert [e["id"] for e in only] == [first]

    shown = world.invoke("errors", "show", first, "--json")
    assert shown.exit_code == 0
    record = json.loads(shown.stdout)
    assert (record["id"], record["map"], record["status"], record["reason"]) == (
        first, "projects", "open", "bad value in row 1")
    human = world.invoke("errors", "show", first)
    assert "bad value in row 1" in human.stdout and '"map": "projects"' in human.stdout

    table = world.invoke("errors", "list")
    assert first in table.stdout and "2 error(s)" in table.stdout
    bad = world.invoke("errors", "list", "--status", "broken")
    assert bad.exit_code == 2 and "broken" in bad.stderr


def test_errors_show_unknown_id_exits_2(world):
    world.seed()
    for args in (["errors", "show", "deadbeef"], ["errors", "dismiss", "deadbeef"], ["errors", "replay", "deadbeef"]):
        result = world.invoke(*args)
        assert result.exit_code == 2 and "deadbeef" in result.stderr, args


def test_replay_one_republishes_to_the_broker(world):
    [error_id] = world.seed(("projects", 1))
    result = world.invoke("errors", "replay", error_id, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "replayed"
    [note] = world.on_subscription("projects")
    assert (note.record, note.attempt, note.origin) == (notification("projects", 1).record, 0, Origin.REPLAY)

    again = world.invoke("errors", "replay", error_id)
    assert again.exit_code == 1 and "replayed" in again.stderr
    assert len(world.on_subscription("projects")) == 1


def test_replay_by_map_and_all(world):
    world.seed(("projects", 1), ("projects", 2), ("actuals", 3))
    result = world.invoke("errors", "replay", "--map", "projects", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["replayed"]) == 2
    assert len(world.on_subscription("projects")) == 2 and world.on_subscription("actuals") == []

    result = world.invoke("errors", "replay", "--all")
    assert result.exit_code == 0 and "replayed 1 error(s)" in result.stdout
    assert len(world.on_subscription("actuals")) == 1
    assert json.loads(world.invoke("errors", "list", "--json").stdout) == []


def test_replay_all_exits_1_when_something_cannot_be_replayed(world):
    world.seed(("projects", 1))

    async def unreadable() -> str:
        state = SqliteStateStore(world.state_path)
        await state.open()
        record = await state.record_error(ErrorReport(map="projects", key="?", classification="bad-message",
                                                      reason="unreadable", payload="garbage"))
        await state.close()
        return record.id

    bad = asyncio.run(unreadable())
    result = world.invoke("errors", "replay", "--all")
    assert result.exit_code == 1 and bad in result.stderr and "replayed 1 error(s)" in result.stdout


@pytest.mark.parametrize("args", [["errors", "replay"], ["errors", "replay", "abc", "--all"],
                                  ["errors", "replay", "--map", "projects", "--all"]])
def test_replay_needs_exactly_one_target(world, args):
    result = world.invoke(*args)
    assert result.exit_code == 2 and "exactly one of ID, --map NAME or --all" in result.stderr


def test_dismiss(world):
    [error_id] = world.seed(("projects", 1))
    result = world.invoke("errors", "dismiss", error_id)
    assert result.exit_code == 0 and f"dismissed {error_id}" in result.stdout
    listed = json.loads(world.invoke("errors", "list", "--status", "dismissed", "--json").stdout)
    assert [e["id"] for e in listed] == [error_id]
    assert world.on_subscription("projects") == []


def test_missing_setting_prints_the_settings_error_and_exits_2(world):
    result = world.invoke("status", DUALSYNC_FINANCE_URL=None)
    assert result.exit_code == 2
    assert "invalid settings" in result.stderr and "DUALSYNC_FINANCE_URL: missing" in result.stderr


def test_transport_without_connection_exits_2(world):
    result = world.invoke("status", DUALSYNC_TRANSPORT="servicebus", DUALSYNC_SERVICEBUS_CONNECTION=None,
                          DUALSYNC_SERVICEBUS_NAMESPACE=None)
    assert result.exit_code == 2 and "Service Bus connection string or namespace" in result.stderr


def test_broker_without_the_topic_exits_1(world):
    [error_id] = world.seed(("projects", 1))
    result = world.invoke("errors", "replay", error_id, DUALSYNC_BROKER_PATH=str(world.state_path.parent / "x.sqlite"))
    assert result.exit_code == 1 and "EntityNotFoundError" in result.stderr


@pytest.mark.parametrize("command", [["errors", "list"], ["errors", "show"], ["errors", "replay"],
                                     ["errors", "dismiss"], ["pause"], ["resume"], ["status"]])
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Example: dualsync " + command[0] in result.stdout


def test_the_installed_entry_point(world):
    """`dualsync` as operators run it: a separate process reading settings from its environment."""
    world.seed(("projects", 1))
    env = {**os.environ, **world.env}
    proc = subprocess.run([sys.executable, "-m", "cli", "status", "--json"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["maps"]["projects"]["open_errors"] == 1


def test_errors_of_an_ingress_queue_list_and_replay_to_that_queue(world):
    queue = "dualsync-dataverse-ingress"  # the default DUALSYNC_INGRESS_QUEUE_DATAVERSE
    event = {"MessageName": "Update", "PrimaryEntityName": "msdyn_unknown", "InputParameters": []}

    async def seed() -> str:
        async with LocalBroker(world.broker_path) as broker:
            await broker.create_queue(queue)
        state = SqliteStateStore(world.state_path)
        await state.open()
        try:
            record = await state.record_error(ErrorReport(
                map=queue, key="sb-7", classification="mapping", reason="no map covers the Dataverse table",
                payload={"body": event, "properties": {"content-type": "application/json", "x-claim": "a"},
                         "body_bytes": 99}, message_id="sb-7"))
            return record.id
        finally:
            await state.close()

    error_id = asyncio.run(seed())
    listed = world.invoke("errors", "list", "--map", queue, "--json")
    assert listed.exit_code == 0, listed.output
    assert [e["id"] for e in json.loads(listed.output)] == [error_id]
    assert world.invoke("errors", "list", "--map", "no-such-queue").exit_code != 0
    replayed = world.invoke("errors", "replay", error_id, "--json")
    assert replayed.exit_code == 0, replayed.output

    async def waiting() -> list:
        async with LocalBroker(world.broker_path) as broker:
            return await broker.peek(queue, 10)

    [message] = asyncio.run(waiting())
    assert json.loads(message.body) == event and message.content_type == "application/json"
    assert message.application_properties["x-claim"] == "a"
