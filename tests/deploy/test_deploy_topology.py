"""The Service Bus topology generated from the catalog: committed file in step, filters route exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from deploy.topology import (
    DEFAULT_TOPOLOGY_FILE,
    MAX_SUBSCRIPTION_NAME,
    TopologyError,
    build_topology,
    map_filter,
)
from shared.catalog import Catalog, Side, load_catalog
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.settings import Settings
from shared.transport.local import LocalBroker, SqlFilter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def committed() -> dict:
    """What the Bicep template reads."""
    return json.loads((ROOT / "infra" / "topology.json").read_text(encoding="utf-8"))


def notifications(catalog: Catalog) -> list[ChangeNotification]:
    """Real notifications for every map, from each side it syncs from, with each operation."""
    out = []
    for m in catalog:
        for side in m.direction.sources:
            for version, op in enumerate(Operation):
                out.append(ChangeNotification(
                    map=m.name, source=side,
                    record_id=uuid4() if side is Side.DATAVERSE else None,
                    key=None if side is Side.DATAVERSE else f"USMF|{m.name.upper()}-1",
                    operation=op, version=version, time=datetime.now(UTC), origin=Origin.WEBHOOK,
                    correlation_id="corr-1"))
    return out


def test_committed_topology_is_what_the_catalog_generates(catalog, committed):
    # If this fails: run `dualsync deploy topology` and commit infra/topology.json.
    assert DEFAULT_TOPOLOGY_FILE == ROOT / "infra" / "topology.json"
    assert build_topology(catalog).dumps() == DEFAULT_TOPOLOGY_FILE.read_text(encoding="utf-8")
    assert sorted(s["map"] for s in committed["subscriptions"]) == sorted(catalog.maps)


def test_entities_are_named_as_the_app_settings_default(committed):
    defaults = {f"DUALSYNC_{name.upper()}": f.default for name, f in Settings.model_fields.items()}
    assert defaults[committed["topic"]["setting"]] == committed["topic"]["name"]
    assert {q["setting"] for q in committed["queues"]} == {
        "DUALSYNC_INGRESS_QUEUE_DATAVERSE", "DUALSYNC_INGRESS_QUEUE_FINANCE", "DUALSYNC_WORK_QUEUE"}
    for q in committed["queues"]:
        assert defaults[q["setting"]] == q["name"]


def test_subscriptions_are_session_enabled_and_dead_letter(committed):
    assert committed["topic"]["properties"]["requiresDuplicateDetection"] is True
    for s in committed["subscriptions"]:
        p = s["properties"]
        assert s["name"] == s["map"] and len(s["name"]) <= MAX_SUBSCRIPTION_NAME
        assert p["requiresSession"] is True
        assert p["deadLetteringOnMessageExpiration"] is True
        assert p["maxDeliveryCount"] >= 1
        # the rule replaces the TrueFilter ARM creates as $Default with each subscription
        assert s["rule"] == {"name": "$Default", "sqlExpression": map_filter(s["map"])}
    for q in committed["queues"]:
        assert q["properties"]["requiresSession"] is False  # service endpoints send no session id
        assert q["properties"]["deadLetteringOnMessageExpiration"] is True


def test_each_filter_selects_its_maps_notifications_and_no_other(catalog, committed):
    notes = notifications(catalog)
    assert {n.map for n in notes} == set(catalog.maps)
    for sub in committed["subscriptions"]:
        selects = SqlFilter(sub["rule"]["sqlExpression"])
        for note in notes:
            message = note.to_message()
            system = {"message_id": message.message_id, "session_id": message.session_id,
                      "content_type": message.content_type, "correlation_id": message.correlation_id}
            assert selects(message.application_properties, system) is (note.map == sub["map"]), \
                (sub["name"], note.map, note.source)


async def test_local_broker_built_from_the_file_routes_each_map_to_its_subscription(
        catalog, committed, tmp_path):
    notes = notifications(catalog)
    async with LocalBroker(tmp_path / "broker.sqlite") as broker:
        topic = committed["topic"]["name"]
        await broker.create_topic(topic)
        for s in committed["subscriptions"]:
            await broker.create_subscription(
                topic, s["name"], filter=s["rule"]["sqlExpression"],
                requires_session=s["properties"]["requiresSession"],
                max_delivery_count=s["properties"]["maxDeliveryCount"])
        await broker.send(topic, [n.to_message() for n in notes])
        for s in committed["subscriptions"]:
            path = f"{topic}/Subscriptions/{s['name']}"
            got = await broker.peek(path, 1000)
            want = [n.message_id for n in notes if n.map == s["map"]]
            assert sorted(m.message_id for m in got) == sorted(want), s["name"]
            assert {m.application_properties["map"] for m in got} == {s["map"]}


def test_a_map_name_too_long_for_a_subscription_is_refused(catalog):
    first = next(iter(catalog))
    long_name = "m" * (MAX_SUBSCRIPTION_NAME + 1)
    with pytest.raises(TopologyError, match=long_name):
        build_topology(Catalog({**catalog.maps, long_name: first.model_copy(update={"name": long_name})}))


def test_cli_prints_and_writes_the_topology(catalog, tmp_path):
    from cli.main import app

    runner = CliRunner()
    printed = runner.invoke(app, ["deploy", "topology", "--json"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == build_topology(catalog).dumps()
    out = tmp_path / "topology.json"
    written = runner.invoke(app, ["deploy", "topology", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8") == printed.stdout
    assert f"{len(catalog)} subscriptions" in written.stdout
