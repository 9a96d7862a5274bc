"""What only the SQLite store promises: the file survives restarts and several processes share it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from shared.state import ErrorReport, LedgerEntry, RunState, SqliteStateStore
from shared.state.keys import decode_key, encode_key


async def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.sqlite"
    async with SqliteStateStore(path) as store:
        written = await store.put_ledger(LedgerEntry("projects", "P-1", 7, "finance", "h"))
        await store.put_checkpoint("projects", {"token": "t1"})
        rec = await store.record_error(ErrorReport("projects", "P-1", "mapping", "bad value"))
        await store.set_map_state("projects", RunState.PAUSED, reason="maintenance")
    async with SqliteStateStore(path) as again:
        assert await again.get_ledger("projects", "P-1") == written
        assert (await again.get_checkpoint("projects")).data == {"token": "t1"}  # type: ignore[union-attr]
        assert (await again.get_error(rec.id)).reason == "bad value"  # type: ignore[union-attr]
        assert (await again.get_map_state("projects")).reason == "maintenance"
        journal = again._conn.execute("PRAGMA journal_mode").fetchone()[0]  # type: ignore[union-attr]
        assert journal == "wal"


async def test_iter_ledger_pages(tmp_path: Path) -> None:
    async with SqliteStateStore(tmp_path / "s.sqlite") as store:
        for i in range(23):
            await store.put_ledger(LedgerEntry("m", f"k{i:02d}", i, "dataverse"))
        keys = [e.key async for e in store.iter_ledger("m", page_size=5)]
        assert keys == [f"k{i:02d}" for i in range(23)]


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from shared.state import ConcurrencyError, SqliteStateStore

    async def main(path, n):
        async with SqliteStateStore(path) as store:
            done = 0
            while done < n:
                cp = await store.get_checkpoint("counter")
                try:
                    await store.put_checkpoint("counter", {"n": cp.data["n"] + 1}, expected_etag=cp.etag)
                    done += 1
                except ConcurrencyError:
                    pass

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_several_processes_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    async with SqliteStateStore(path) as store:
        await store.put_checkpoint("counter", {"n": 0})
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), "40"], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    async with SqliteStateStore(path) as store:
        # Optimistic concurrency across processes: no increment lost.
        assert (await store.get_checkpoint("counter")).data == {"n": 120}  # type: ignore[union-attr]


def test_key_encoding_is_reversible_and_table_safe() -> None:
    for raw in ["a/b\\c#d?e", "\x00\x1f\x7f\x9f", "100%", "%2F", "plain", ""]:
        enc = encode_key(raw)
        assert not any(c in enc for c in "/\\#?") and all(
            not (ord(c) < 32 or 127 <= ord(c) <= 159) for c in enc
        )
        assert decode_key(enc) == raw
    long_key = "x" * 5000
    assert len(encode_key(long_key)) <= 400 and encode_key(long_key) != encode_key(long_key + "y")
