"""Dataverse change tracking pulls against the emulator over HTTP, publishing to the local broker."""

from __future__ import annotations

from uuid import UUID

import pytest

from shared.catalog.models import Side
from shared.events.notification import Operation, Origin
from shared.pull import Budget, PullMode
from shared.pull.dataverse import checkpoint_name
from tests.pull.conftest import World

MAP = "resource_roles"  # bookableresourcecategories -> Finance, no company, no required lookups


def create(world: World, name: str) -> UUID:
    with world.dv_client() as c:
        r = c.post("bookableresourcecategories", json={"name": name})
        assert r.status_code == 204, r.text
        return UUID(r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))


def rename(world: World, rid: UUID, name: str) -> None:
    with world.dv_client() as c:
        assert c.patch(f"bookableresourcecategories({rid})", json={"name": name}).status_code == 204


def delete(world: World, rid: UUID) -> None:
    with world.dv_client() as c:
        assert c.delete(f"bookableresourcecategories({rid})").status_code == 204


def version(world: World, rid: UUID) -> int:
    with world.dv_client() as c:
        return int(c.get(f"bookableresourcecategories({rid})?$select=versionnumber").json()["versionnumber"])


async def pull(world: World, **options):
    return await world.service(**options).pullers[Side.DATAVERSE].pull(world.compiled(MAP), Budget())


async def test_first_run_takes_the_token_only_then_changes_become_notifications(world: World) -> None:
    kept, renamed, removed = create(world, "Developer"), create(world, "Tester"), create(world, "Architect")

    first = await pull(world)
    assert (first.mode, first.published, first.complete) == (PullMode.BASELINE, 0, True)
    assert await world.notifications() == []
    assert (await world.state.get_checkpoint(checkpoint_name(MAP))).data["delta_token"]

    added = create(world, "Consultant")
    rename(world, renamed, "Senior tester")
    delete(world, removed)
    second = await pull(world)
    assert (second.mode, second.published, second.complete) == (PullMode.INCREMENTAL, 3, True)
    notes = await world.notifications()
    by_record = {n.record_id: n for n in notes}
    assert set(by_record) == {added, renamed, removed} and kept not in by_record
    assert {n.map for n in notes} == {MAP} and {n.source for n in notes} == {Side.DATAVERSE}
    assert all(n.origin is Origin.TIMER for n in notes)
    assert by_record[removed].operation is Operation.DELETE
    assert by_record[added].operation is by_record[renamed].operation is Operation.UNKNOWN
    assert by_record[renamed].version == version(world, renamed)
    assert by_record[added].version == version(world, added)
    # same session as a webhook's notification of the record, so a record's changes stay in order
    assert by_record[renamed].session_id == f"{MAP}:dataverse:{renamed}"

    third = await pull(world)
    assert (third.published, third.complete) == (0, True)
    assert len(await world.notifications()) == 3


async def test_expired_token_reads_everything_again(world: World) -> None:
    ids = {create(world, f"Role {i}") for i in range(3)}
    await pull(world)
    world.dv.app.state.emulator.expire_delta_tokens()

    reread = await pull(world)
    assert (reread.mode, reread.published, reread.complete) == (PullMode.FULL_REREAD, 3, True)
    assert {n.record_id for n in await world.notifications()} == ids
    assert (await world.state.get_checkpoint(checkpoint_name(MAP))).data["mode"] == PullMode.INCREMENTAL

    late = create(world, "Role late")
    after = await pull(world)
    assert (after.mode, after.published) == (PullMode.INCREMENTAL, 1)
    assert (await world.notifications())[-1].record_id == late


async def test_failed_publish_keeps_the_checkpoint_and_the_next_run_repeats(world: World) -> None:
    await pull(world)
    before = await world.state.get_checkpoint(checkpoint_name(MAP))
    changed = {create(world, "Planner"), create(world, "Scheduler")}

    world.transport.failing = True
    with pytest.raises(ConnectionError):
        await pull(world)
    after_failure = await world.state.get_checkpoint(checkpoint_name(MAP))
    assert (after_failure.data, after_failure.etag) == (before.data, before.etag)
    assert await world.notifications() == []

    world.transport.failing = False
    again = await pull(world)
    assert again.published == 2
    assert {n.record_id for n in await world.notifications()} == changed


async def test_budget_stops_between_pages_and_the_next_run_resumes(world: World) -> None:
    await pull(world)
    changed = {create(world, f"Batch role {i}") for i in range(5)}
    service = world.service(page_size=2)
    cm = world.compiled(MAP)
    runs = []
    for _ in range(5):
        result = await service.pullers[Side.DATAVERSE].pull(cm, Budget(max_rows=2))
        runs.append((result.published, result.complete))
        if result.complete:
            break
    assert runs == [(2, False), (2, False), (1, True)]
    notes = await world.notifications()
    assert len(notes) == 5 and {n.record_id for n in notes} == changed  # each exactly once
    assert "resume" not in (await world.state.get_checkpoint(checkpoint_name(MAP))).data
    assert (await pull(world)).published == 0


async def test_baseline_cut_short_resumes_without_publishing(world: World) -> None:
    for i in range(5):
        create(world, f"Existing {i}")
    service = world.service(page_size=2)
    cm = world.compiled(MAP)
    first = await service.pullers[Side.DATAVERSE].pull(cm, Budget(max_rows=1))
    assert (first.mode, first.complete) == (PullMode.BASELINE, False)
    assert (await world.state.get_checkpoint(checkpoint_name(MAP))).data["resume"]
    rest = await service.pullers[Side.DATAVERSE].pull(cm, Budget())
    assert (rest.mode, rest.published, rest.complete) == (PullMode.BASELINE, 0, True)
    assert await world.notifications() == []
    new = create(world, "After baseline")
    assert [n.record_id for n in await (_pull_and_read(world))] == [new]


async def _pull_and_read(world: World):
    await pull(world)
    return await world.notifications()


async def test_a_resume_link_whose_token_expired_falls_back_to_a_full_reread(world: World) -> None:
    await pull(world)
    changed = {create(world, f"Cut role {i}") for i in range(4)}
    service = world.service(page_size=2)
    cm = world.compiled(MAP)
    cut = await service.pullers[Side.DATAVERSE].pull(cm, Budget(max_rows=1))
    assert (cut.published, cut.complete) == (2, False)
    world.dv.app.state.emulator.expire_delta_tokens()
    rest = await service.pullers[Side.DATAVERSE].pull(cm, Budget())
    assert (rest.mode, rest.published, rest.complete) == (PullMode.FULL_REREAD, 4, True)
    assert {n.record_id for n in await world.notifications()} == changed


async def test_change_pages_carry_their_next_link_and_a_read_resumes_from_it(world: World) -> None:
    """DataverseConnector.changes: each page says where the next one is; ``resume`` goes on from there."""
    select = ["bookableresourcecategoryid", "versionnumber"]
    token = [p async for p in world.dataverse.changes("bookableresourcecategories", select=select)][-1].delta_token
    ids = {create(world, f"Paged role {i}") for i in range(5)}
    delete(world, next(iter(ids)))
    first = None
    async for page in world.dataverse.changes("bookableresourcecategories", select=select, delta_token=token,
                                              page_size=2):
        first = page
        break
    assert first is not None and first.next_link and first.delta_token is None and len(first.rows) == 2
    rest = [p async for p in world.dataverse.changes("bookableresourcecategories", select=select,
                                                     resume=first.next_link)]
    assert rest[-1].next_link is None and rest[-1].delta_token
    assert all(p.next_link for p in rest[:-1])
    seen = {UUID(r["bookableresourcecategoryid"]) for p in [first, *rest] for r in p.rows}
    deleted = [d for p in [first, *rest] for d in p.deleted_ids]
    assert seen | set(deleted) == ids and len(deleted) == 1
