"""Finance watermark pulls against the emulator over HTTP (cross-company), publishing to the local broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.catalog.models import Side
from shared.events.notification import Operation, Origin
from shared.pull import Budget, PullMode
from shared.pull.finance import checkpoint_name, parse_time, text
from tests.pull.conftest import World

MAP = "customers"  # CustomersV3, company-specific: key = [legal entity, account]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the emulator keeps whole seconds


def customer(company: str, account: str, modified: datetime | None = None) -> dict:
    row = {"dataAreaId": company, "CustomerAccount": account, "OrganizationName": f"Org {account}",
           "CustomerGroupId": "10", "SalesCurrencyCode": "USD", "PartyType": "Organization"}
    if modified is not None:
        row["ModifiedDateTime"] = stamp(modified)
    return row


def load(world: World, *rows: dict) -> None:
    world.fo.app.state.emulator.load_rows("CustomersV3", list(rows))


async def pull(world: World, budget: Budget | None = None, **options):
    return await world.service(**options).pullers[Side.FINANCE].pull(world.compiled(MAP), budget or Budget())


async def watermark(world: World) -> datetime:
    checkpoint = await world.state.get_checkpoint(checkpoint_name(MAP))
    moment = parse_time(checkpoint.data["watermark"])
    assert moment is not None
    return moment


async def test_first_run_takes_the_newest_timestamp_then_rows_of_every_legal_entity_follow(world: World) -> None:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    load(world, customer("usmf", "OLD-1", hour_ago), customer("uspm", "OLD-2", hour_ago - timedelta(minutes=10)))

    first = await pull(world)
    assert (first.mode, first.published) == (PullMode.BASELINE, 0)
    assert await watermark(world) == parse_time(stamp(hour_ago))
    assert await world.notifications() == []

    load(world, customer("usmf", "C-1"), customer("uspm", "C-2"))
    second = await pull(world)
    assert (second.mode, second.published, second.complete) == (PullMode.INCREMENTAL, 3, True)
    notes = await world.notifications()
    # OLD-1 sits at the watermark, inside the 5-minute overlap: announced again (harmless);
    # OLD-2 is older than watermark - overlap
    assert sorted(n.key for n in notes) == ['["USMF","C-1"]', '["USMF","OLD-1"]', '["USPM","C-2"]']
    assert {(n.map, n.source, n.operation, n.origin) for n in notes} == {
        (MAP, Side.FINANCE, Operation.UNKNOWN, Origin.TIMER)}
    assert await watermark(world) >= datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)

    # nothing new: the overlap reads the same row versions again, and their message ids dedupe
    third = await pull(world)
    assert third.published == 2 and len(await world.notifications()) == 3  # sent, and dropped as duplicates


async def test_an_update_in_the_same_second_is_a_new_message(world: World) -> None:
    await pull(world)
    load(world, customer("usmf", "C-9"))
    await pull(world)
    with world.fo_client() as c:
        r = c.patch("CustomersV3(dataAreaId='usmf',CustomerAccount='C-9')", json={"OrganizationName": "Renamed"})
        assert r.status_code == 204, r.text
    await pull(world)
    notes = await world.notifications()
    assert [n.key for n in notes] == ['["USMF","C-9"]', '["USMF","C-9"]']
    assert len({n.message_id for n in notes}) == 2 and len({n.session_id for n in notes}) == 1


async def test_overlap_catches_a_late_commit_with_an_older_timestamp(world: World) -> None:
    await pull(world, overlap=timedelta(minutes=5))  # empty entity: the watermark starts at the epoch
    assert await watermark(world) == datetime(1970, 1, 1, tzinfo=UTC)
    load(world, customer("usmf", "NOW"))
    await pull(world, overlap=timedelta(minutes=5))
    mark = await watermark(world)

    # committed after the last pull, stamped before its watermark: inside the overlap it is caught,
    # beyond it it is not (that is what the overlap setting bounds)
    load(world, customer("uspm", "LATE", mark - timedelta(minutes=2)),
         customer("uspm", "TOO-LATE", mark - timedelta(minutes=10)))
    await pull(world, overlap=timedelta(minutes=5))
    keys = [n.key for n in await world.notifications()]
    assert keys == ['["USMF","NOW"]', '["USPM","LATE"]']


async def test_budget_cut_resumes_after_the_cursor_even_within_one_timestamp(world: World) -> None:
    await pull(world)
    same_second = datetime.now(UTC)
    load(world, *(customer("usmf" if i % 2 else "uspm", f"B-{i}", same_second) for i in range(5)))
    runs = []
    for _ in range(5):
        result = await pull(world, Budget(max_rows=2), page_size=2)
        runs.append((result.published, result.complete))
        if result.complete:
            break
    assert runs == [(2, False), (2, False), (1, True)]
    notes = await world.notifications()
    assert sorted(n.key for n in notes) == sorted(
        f'["{"USMF" if i % 2 else "USPM"}","B-{i}"]' for i in range(5))
    checkpoint = await world.state.get_checkpoint(checkpoint_name(MAP))
    assert "cursor" not in checkpoint.data and checkpoint.data["watermark"] == text(parse_time(stamp(same_second)))


async def test_failed_publish_keeps_the_watermark(world: World) -> None:
    await pull(world)
    before = await world.state.get_checkpoint(checkpoint_name(MAP))
    load(world, customer("usmf", "F-1"))
    world.transport.failing = True
    with pytest.raises(ConnectionError):
        await pull(world)
    after = await world.state.get_checkpoint(checkpoint_name(MAP))
    assert (after.data, after.etag) == (before.data, before.etag)
    world.transport.failing = False
    assert (await pull(world)).published == 1
    assert [n.key for n in await world.notifications()] == ['["USMF","F-1"]']


async def test_deletes_are_not_seen_by_a_watermark(world: World) -> None:
    load(world, customer("usmf", "D-1", datetime.now(UTC) - timedelta(hours=1)))
    await pull(world)
    with world.fo_client() as c:
        assert c.delete("CustomersV3(dataAreaId='usmf',CustomerAccount='D-1')").status_code == 204
    result = await pull(world)
    assert (result.published, result.complete) == (0, True)
    assert await world.notifications() == []


def test_pull_service_takes_budget_rows_and_overlap_from_settings(tmp_path):
    from shared.pull import PullService
    from shared.pull.budget import DEFAULT_MAX_ROWS, DEFAULT_SECONDS
    from shared.pull.finance import DEFAULT_OVERLAP, FinancePuller
    from shared.runtime import get_runtime
    from shared.settings import load_settings
    from shared.state.sqlite import SqliteStateStore
    from shared.transport.local import LocalBroker, LocalBrokerTransport

    compiled = get_runtime().compiled
    state = SqliteStateStore(tmp_path / "s.sqlite")
    transport = LocalBrokerTransport(LocalBroker(tmp_path / "b.sqlite"))
    settings = load_settings(pull_budget_seconds=60, pull_max_rows=1000, pull_overlap_seconds=30, page_size=200)
    service = PullService.from_settings(settings, compiled, state, transport)
    finance = service.pullers[Side.FINANCE]
    assert (service.seconds, service.max_rows) == (60, 1000)
    assert isinstance(finance, FinancePuller) and finance.overlap == timedelta(seconds=30)
    assert finance.page_size == service.pullers[Side.DATAVERSE].page_size == 200
    assert finance.topic == settings.change_topic
    defaults = PullService.from_settings(load_settings(), compiled, state, transport)
    assert (defaults.seconds, defaults.max_rows) == (DEFAULT_SECONDS, DEFAULT_MAX_ROWS) == (240, 50_000)
    assert defaults.pullers[Side.FINANCE].overlap == DEFAULT_OVERLAP == timedelta(seconds=300)  # type: ignore[union-attr]
