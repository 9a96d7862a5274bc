"""Bulk ledger reads (``get_ledgers``), run against every StateStore (SQLite, Table Storage on Azurite):
exactly the present entries come back, whatever the keys hold and however many there are."""

from __future__ import annotations

import random
import uuid

import pytest

from shared.state import LedgerEntry, SqliteStateStore, StateStore
from shared.state.sqlite import _IN_CHUNK
from shared.state.table import _KEYS_PER_QUERY, TableStateStore
from tests.state.test_state_contract import NASTY_KEYS, entry

# Keys a filter could trip on: quotes (OData doubles them), characters escaped in row keys, spaces
# around what looks like filter syntax, and text past the encoder's length limit.
TRICKY_KEYS = [
    *NASTY_KEYS,
    "it''s", "'", "''", "a' or RowKey ne 'x", "x) or (true", "@k0", "a b  c", "#%/?", "%25", "日本/é'#",
    "usmf|" + "x/" * 600 + "a",
]


def _view(got: dict[str, LedgerEntry]) -> dict[str, tuple[str, str, int, str | None]]:
    return {k: (e.map, e.key, e.source_version, e.target_hash) for k, e in got.items()}


async def test_get_ledgers_returns_exactly_the_present_entries(store: StateStore) -> None:
    present = [f"P-{i:03d}" for i in range(0, 40, 2)] + TRICKY_KEYS[::2]
    absent = [f"P-{i:03d}" for i in range(1, 40, 2)] + TRICKY_KEYS[1::2]
    stored = await store.put_ledgers(
        [entry(key=k, version=i + 1, target_hash=f"h{i}") for i, k in enumerate(present)]
    )
    # the same keys in another map must not leak in
    await store.put_ledgers([entry(map="project_tasks", key=k, version=999) for k in absent + present])
    asked = absent + present
    random.Random(7).shuffle(asked)  # present and absent keys mixed within each group
    assert len(asked) > 2 * _KEYS_PER_QUERY  # several partition queries at once

    got = await store.get_ledgers("projects", asked)

    assert _view(got) == {e.key: (e.map, e.key, e.source_version, e.target_hash) for e in stored}
    # each entry is the one get_ledger returns, etag included
    for key in present:
        assert got[key] == await store.get_ledger("projects", key)
    other = await store.get_ledgers("project_tasks", absent)
    assert set(other) == set(absent) and {e.source_version for e in other.values()} == {999}


async def test_get_ledgers_for_tricky_keys_one_by_one(store: StateStore) -> None:
    # each key alone and each with its neighbours: a key's escaping never matches another row
    await store.put_ledgers([entry(key=k, version=i) for i, k in enumerate(TRICKY_KEYS)])
    for i, key in enumerate(TRICKY_KEYS):
        got = await store.get_ledgers("projects", [key, f"{key}-absent"])
        assert _view(got) == {key: ("projects", key, i, None)}, key


async def test_get_ledgers_with_no_keys_or_no_rows(store: StateStore) -> None:
    assert await store.get_ledgers("projects", []) == {}
    assert await store.get_ledgers("projects", ["P-1", "P-2"]) == {}
    await store.put_ledger(entry(key="P-1"))
    assert await store.get_ledgers("projects", []) == {}
    assert await store.get_ledgers("nothing", ["P-1"]) == {}


async def test_get_ledgers_reads_a_key_given_twice_once(store: StateStore) -> None:
    await store.put_ledger(entry(key="a'b", version=3))
    got = await store.get_ledgers("projects", ["a'b", "x", "a'b", "x"])
    assert _view(got) == {"a'b": ("projects", "a'b", 3, None)}


async def test_get_ledgers_over_more_than_one_chunk(store: StateStore) -> None:
    # SQLite: more keys than one IN (...) holds; Table Storage: about 90 partition queries
    count = 2 * _IN_CHUNK + 200 if not isinstance(store, TableStateStore) else 90 * _KEYS_PER_QUERY
    keys = [f"K/{i:05d}'" for i in range(count)]
    await store.put_ledgers([entry(key=k, version=i) for i, k in enumerate(keys) if i % 3])
    got = await store.get_ledgers("projects", keys)
    assert {k: e.source_version for k, e in got.items()} == {k: i for i, k in enumerate(keys) if i % 3}


async def test_sqlite_get_ledgers_is_one_call(tmp_path, mocker) -> None:
    store = SqliteStateStore(tmp_path / "state.sqlite")
    await store.open()
    try:
        keys = [f"K-{i}" for i in range(1_200)]
        await store.put_ledgers([entry(key=k) for k in keys[::2]])
        runs = mocker.spy(store, "_run")
        got = await store.get_ledgers("projects", keys)
        assert runs.call_count == 1  # one thread hop for 1,200 keys, over three IN chunks
        assert set(got) == set(keys[::2])
    finally:
        await store.close()


@pytest.mark.azurite
async def test_table_get_ledgers_queries_groups_of_keys(azurite_connection_string, mocker) -> None:
    store = TableStateStore.from_connection_string(azurite_connection_string, prefix="g" + uuid.uuid4().hex[:12])
    await store.open()
    try:
        keys = [f"K-{i}" for i in range(40)]
        await store.put_ledgers([entry(key=k) for k in keys[::2]])
        queries = mocker.spy(store._ledger, "query_entities")
        points = mocker.spy(store._ledger, "get_entity")
        got = await store.get_ledgers("projects", keys)
        assert set(got) == set(keys[::2])
        assert queries.call_count == 3 and points.call_count == 0  # 14 + 14 + 12 keys
        for call in queries.call_args_list:
            query_filter = call.args[0]
            assert query_filter.count(" eq ") <= 15  # the service's limit on comparisons
    finally:
        await store.drop_tables()
        await store.close()
