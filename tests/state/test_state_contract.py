"""One contract, run against every StateStore implementation (SQLite and Table Storage on Azurite)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.state import (
    ConcurrencyError,
    ErrorClassification,
    ErrorReport,
    ErrorStatus,
    LedgerEntry,
    NotFoundError,
    RunState,
    StateStore,
)

# Every character Table Storage forbids in keys, plus the escape character and a quote.
NASTY_KEYS = ["a/b", "a\\b", "a#b", "a?b", "a\x00b\x1fc\x7f\x9f", "100%", "a%2Fb", "o'brien", "", "ü/ß"]


def entry(map: str = "projects", key: str = "P-1", version: int = 1, **kw: object) -> LedgerEntry:
    return LedgerEntry(map=map, key=key, source_version=version, source_side="dataverse", **kw)  # type: ignore[arg-type]


# --- ledger ----------------------------------------------------------------------------------------
async def test_ledger_round_trip(store: StateStore) -> None:
    assert await store.get_ledger("projects", "P-1") is None
    when = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    written = await store.put_ledger(
        entry(version=2**40 + 7, target_hash="h1", target_etag='W/"123"', updated_at=when)
    )
    assert written.etag
    got = await store.get_ledger("projects", "P-1")
    assert got == written
    assert got.source_version == 2**40 + 7  # Dataverse versionnumber is 64-bit
    assert (got.target_hash, got.target_etag, got.updated_at, got.source_side) == (
        "h1",
        'W/"123"',
        when,
        "dataverse",
    )


async def test_ledger_optimistic_concurrency(store: StateStore) -> None:
    first = await store.put_ledger(entry(version=1), only_if_absent=True)
    with pytest.raises(ConcurrencyError):
        await store.put_ledger(entry(version=9), only_if_absent=True)
    second = await store.put_ledger(entry(version=2), expected_etag=first.etag)
    assert second.etag != first.etag
    with pytest.raises(ConcurrencyError):
        await store.put_ledger(entry(version=3), expected_etag=first.etag)  # stale
    got = await store.get_ledger("projects", "P-1")
    assert got is not None and got.source_version == 2
    with pytest.raises(ConcurrencyError):
        await store.put_ledger(entry(key="never-written"), expected_etag=first.etag)
    # Unconditional write always lands.
    assert (await store.put_ledger(entry(version=4))).source_version == 4


async def test_ledger_concurrent_writers_only_one_wins(store: StateStore) -> None:
    base = await store.put_ledger(entry(version=1))
    results = await asyncio.gather(
        *(store.put_ledger(entry(version=10 + i), expected_etag=base.etag) for i in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, LedgerEntry)]
    assert len(winners) == 1
    assert all(isinstance(r, ConcurrencyError) for r in results if r not in winners)
    got = await store.get_ledger("projects", "P-1")
    assert got is not None and got.source_version == winners[0].source_version


async def test_ledger_delete(store: StateStore) -> None:
    written = await store.put_ledger(entry())
    updated = await store.put_ledger(entry(version=2), expected_etag=written.etag)
    with pytest.raises(ConcurrencyError):
        await store.delete_ledger("projects", "P-1", expected_etag=written.etag)
    assert await store.delete_ledger("projects", "P-1", expected_etag=updated.etag) is True
    assert await store.get_ledger("projects", "P-1") is None
    assert await store.delete_ledger("projects", "P-1") is False


@pytest.mark.parametrize("key", NASTY_KEYS)
async def test_ledger_keys_with_forbidden_characters(store: StateStore, key: str) -> None:
    map_name = "company/maps#1"
    await store.put_ledger(entry(map=map_name, key=key, version=5))
    got = await store.get_ledger(map_name, key)
    assert got is not None and (got.map, got.key, got.source_version) == (map_name, key, 5)
    assert [e.key async for e in store.iter_ledger(map_name)] == [key]


async def test_ledger_escaped_keys_do_not_collide(store: StateStore) -> None:
    await store.put_ledger(entry(key="a/b", version=1))
    await store.put_ledger(entry(key="a%2Fb", version=2))
    await store.put_ledger(entry(key="a%252Fb", version=3))
    versions = {
        k: (await store.get_ledger("projects", k)).source_version for k in ("a/b", "a%2Fb", "a%252Fb")
    }  # type: ignore[union-attr]
    assert versions == {"a/b": 1, "a%2Fb": 2, "a%252Fb": 3}


async def test_ledger_long_key(store: StateStore) -> None:
    long_a = "usmf|" + "x/" * 600 + "a"
    long_b = "usmf|" + "x/" * 600 + "b"  # same head once shortened: must still be distinct
    await store.put_ledger(entry(key=long_a, version=1))
    await store.put_ledger(entry(key=long_b, version=2))
    assert (await store.get_ledger("projects", long_a)).source_version == 1  # type: ignore[union-attr]
    assert (await store.get_ledger("projects", long_b)).source_version == 2  # type: ignore[union-attr]


async def test_iter_ledger_lists_one_map(store: StateStore) -> None:
    for i in range(25):
        await store.put_ledger(entry(map="projects", key=f"P-{i:03d}", version=i))
    await store.put_ledger(entry(map="project_tasks", key="T-1"))
    got = sorted([(e.key, e.source_version) async for e in store.iter_ledger("projects")])
    assert got == [(f"P-{i:03d}", i) for i in range(25)]
    assert [e.key async for e in store.iter_ledger("nothing")] == []


async def test_put_ledgers_writes_many_maps_at_once(store: StateStore) -> None:
    # 230 of one map (more than a Table Storage batch of 100), some of another, nasty keys among them
    await store.put_ledger(entry(key="P-000", version=0, target_hash="old"))
    entries = [entry(key=f"P-{i:03d}", version=i, target_hash=f"h{i}") for i in range(230)]
    entries += [entry(map="project_tasks", key=k, version=7) for k in NASTY_KEYS]
    stored = await store.put_ledgers(entries)
    assert [(e.map, e.key, e.source_version, e.target_hash) for e in stored] == [
        (e.map, e.key, e.source_version, e.target_hash) for e in entries]
    assert all(e.etag for e in stored)
    got = sorted([(e.key, e.source_version, e.target_hash) async for e in store.iter_ledger("projects")])
    assert got == [(f"P-{i:03d}", i, f"h{i}") for i in range(230)]  # P-000 overwritten
    assert sorted([e.key async for e in store.iter_ledger("project_tasks")]) == sorted(NASTY_KEYS)
    # the etags returned are the stored ones: a conditional write with one succeeds
    last = stored[229]
    assert (await store.get_ledger("projects", "P-229")).etag == last.etag  # type: ignore[union-attr]
    assert (await store.put_ledger(entry(key="P-229", version=300), expected_etag=last.etag)).source_version == 300
    with pytest.raises(ConcurrencyError):
        await store.put_ledger(entry(key="P-229", version=301), expected_etag=last.etag)


async def test_put_ledgers_same_key_twice_keeps_the_last_and_empty_is_a_no_op(store: StateStore) -> None:
    assert await store.put_ledgers([]) == []
    stored = await store.put_ledgers([entry(version=1), entry(key="P-2", version=2), entry(version=3)])
    assert [e.source_version for e in stored] == [1, 2, 3]
    got = await store.get_ledger("projects", "P-1")
    assert got is not None and got.source_version == 3 and got.etag == stored[2].etag


# --- checkpoints -----------------------------------------------------------------------------------
async def test_checkpoint_round_trip_and_concurrency(store: StateStore) -> None:
    name = "projects/dataverse#initial?run=1"
    assert await store.get_checkpoint(name) is None
    first = await store.put_checkpoint(name, {"token": "abc", "rows": 10, "done": False}, only_if_absent=True)
    got = await store.get_checkpoint(name)
    assert (
        got is not None and got.data == {"token": "abc", "rows": 10, "done": False} and got.etag == first.etag
    )
    with pytest.raises(ConcurrencyError):
        await store.put_checkpoint(name, {}, only_if_absent=True)
    second = await store.put_checkpoint(name, {"rows": 20}, expected_etag=first.etag)
    with pytest.raises(ConcurrencyError):
        await store.put_checkpoint(name, {"rows": 30}, expected_etag=first.etag)
    assert (await store.get_checkpoint(name)).data == {"rows": 20}  # type: ignore[union-attr]
    with pytest.raises(ConcurrencyError):
        await store.delete_checkpoint(name, expected_etag=first.etag)
    assert await store.delete_checkpoint(name, expected_etag=second.etag) is True
    assert await store.get_checkpoint(name) is None
    assert await store.delete_checkpoint(name) is False


# --- error records ---------------------------------------------------------------------------------
def report(**kw: object) -> ErrorReport:
    base: dict[str, object] = {
        "map": "projects",
        "key": "P-1",
        "classification": ErrorClassification.DEPENDENCY_MISSING,
        "reason": "parent contract missing",
        "description": "ProjCDSProjectContracts('C-1') not found",
        "delivery_count": 1,
        "payload": {"map": "projects", "record_key": "P-1"},
        "message_id": "m-1",
        "session_id": "projects|P-1",
    }
    return ErrorReport(**(base | kw))  # type: ignore[arg-type]


T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


async def test_record_error_upserts_occurrences(store: StateStore) -> None:
    first = await store.record_error(report(), seen_at=T0)
    assert (first.occurrences, first.status, first.first_seen, first.last_seen) == (
        1,
        ErrorStatus.OPEN,
        T0,
        T0,
    )
    again = await store.record_error(
        report(delivery_count=3, reason="still missing"), seen_at=T0 + timedelta(minutes=5)
    )
    assert again.id == first.id
    got = await store.get_error(first.id)
    assert got is not None
    assert (got.occurrences, got.first_seen, got.last_seen) == (2, T0, T0 + timedelta(minutes=5))
    assert (got.reason, got.delivery_count, got.classification) == ("still missing", 3, "dependency-missing")
    assert (got.message_id, got.session_id, got.payload) == (
        "m-1",
        "projects|P-1",
        {"map": "projects", "record_key": "P-1"},
    )
    # Another message id, classification or key is another record.
    other = await store.record_error(report(message_id="m-2"), seen_at=T0)
    other_cls = await store.record_error(report(classification=ErrorClassification.VALIDATION), seen_at=T0)
    assert len({first.id, other.id, other_cls.id}) == 3
    assert await store.count_errors() == 3


async def test_concurrent_record_error_counts_every_occurrence(store: StateStore) -> None:
    await asyncio.gather(*(store.record_error(report()) for _ in range(8)))
    (only,) = await store.list_errors()
    assert only.occurrences == 8


async def test_list_filter_order_limit_and_status(store: StateStore) -> None:
    for i in range(5):
        await store.record_error(report(key=f"P-{i}"), seen_at=T0 + timedelta(seconds=i))
    await store.record_error(report(map="project_tasks", key="T-1"), seen_at=T0 + timedelta(seconds=10))
    listed = await store.list_errors(map="projects")
    assert [e.key for e in listed] == ["P-4", "P-3", "P-2", "P-1", "P-0"]  # newest first
    assert [e.key for e in await store.list_errors(limit=2)] == ["T-1", "P-4"]
    assert await store.count_errors() == 6
    assert await store.count_errors(map="projects") == 5

    replayed = await store.set_error_status(listed[0].id, ErrorStatus.REPLAYED)
    assert replayed.status is ErrorStatus.REPLAYED and replayed.key == "P-4"
    await store.set_error_status(listed[1].id, "dismissed")
    assert [e.key for e in await store.list_errors(map="projects")] == ["P-2", "P-1", "P-0"]
    assert [e.key for e in await store.list_errors(status="replayed")] == ["P-4"]
    assert len(await store.list_errors(status=None)) == 6
    assert await store.count_errors(map="projects", status=ErrorStatus.DISMISSED) == 1
    assert await store.count_errors(status=None) == 6

    # The same failure coming back re-opens the record.
    back = await store.record_error(report(key="P-4"), seen_at=T0 + timedelta(hours=1))
    assert (back.status, back.occurrences) == (ErrorStatus.OPEN, 2)
    assert await store.count_errors(map="projects") == 4


async def test_unknown_error_id(store: StateStore) -> None:
    assert await store.get_error("no-such-id") is None
    with pytest.raises(NotFoundError):
        await store.set_error_status("no-such-id", ErrorStatus.DISMISSED)


async def test_error_payload_is_scrubbed(store: StateStore) -> None:
    payload = {
        "headers": {"Authorization": "Bearer eyJ0eXAi.abc.def", "x-ms-correlation": "c-1"},
        "client_secret": "s3cr3t-value",
        "body": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=AbC123+/=",
        "rows": [{"password": "hunter2", "name": "Contoso"}],
    }
    rec = await store.record_error(report(payload=payload, description="token=Bearer eyJhbGciOi.x.y"))
    got = await store.get_error(rec.id)
    assert got is not None
    text = repr(got)
    for secret in ("eyJ0eXAi", "s3cr3t-value", "AbC123", "hunter2", "eyJhbGciOi"):
        assert secret not in text
    assert got.payload["headers"]["x-ms-correlation"] == "c-1"
    assert got.payload["rows"][0]["name"] == "Contoso"
    assert "SharedAccessKeyName=send" in got.payload["body"]


async def test_large_payload_round_trip(store: StateStore) -> None:
    # Bigger than one Table Storage property (64 KiB) and includes characters outside the BMP.
    big = {"rows": [{"name": f"row {i} 🚀 ünïcode", "value": "v" * 100} for i in range(2000)]}
    rec = await store.record_error(report(payload=big))
    got = await store.get_error(rec.id)
    assert got is not None and got.payload == big


# --- map run state ---------------------------------------------------------------------------------
async def test_map_state(store: StateStore) -> None:
    fresh = await store.get_map_state("projects")
    assert (fresh.state, fresh.since, fresh.paused) == (RunState.RUNNING, None, False)
    paused = await store.set_map_state("projects", RunState.PAUSED, reason="Finance upgrade", since=T0)
    assert paused.paused
    got = await store.get_map_state("projects")
    assert (got.state, got.since, got.reason) == (RunState.PAUSED, T0, "Finance upgrade")
    await store.set_map_state("a/b#c", "running")
    states = await store.list_map_states()
    assert [(s.map, s.state) for s in states] == [("a/b#c", RunState.RUNNING), ("projects", RunState.PAUSED)]
    resumed = await store.set_map_state("projects", RunState.RUNNING)
    assert not resumed.paused and resumed.since is not None
    assert not (await store.get_map_state("projects")).paused
