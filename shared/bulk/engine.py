"""Initial sync: stream a map's master side page by page, map, write in concurrent batches, record
the ledger, checkpoint each page.

Per page: map every row (a row that fails to map is kept in the error store), resolve the page's
references in bulk, build one upsert per row, send them in batches of ``batch_size`` with up to
``initial_sync_concurrency`` batches in flight, record a ledger entry per written row (the live
handler's key and hash, so live sync sees them as applied), keep each failed row in the error store,
and only then write the checkpoint ``initial-sync:<map>`` with the continuation of the next page.
A resumed run starts from that continuation; a page whose writes were cut short is written again,
which is harmless because every write is an upsert by key.

Pages are pipelined: the next page is read while the current ones are written (a queue of one
page), and page N+1 is mapped and its batches queued while page N's batches are still in flight, so
the target never idles between pages. One semaphore per map run keeps at most ``concurrency`` batches
in flight across pages. Checkpoints are still written in page order, each only once its page and
every page before it are fully written. A map that refers to itself (a task under its parent task)
is not pipelined, so a parent on page N is written before its children on page N+1 are checked.
Memory holds at most four pages whatever the table size.

A row of such a map whose parent (a row of the same map) is not written yet waits: its key is kept
in the state store (:mod:`shared.bulk.waiting`) and, once the pass's pages are done, it is read again
by key and retried, in rounds while a round writes something; a row still waiting after a round that
wrote nothing goes to the error store naming its parent. Rounds are checkpointed like pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.bulk import failures
from shared.bulk.context import BulkContext
from shared.bulk.plan import master_sides, sync_order
from shared.bulk.source import Page, first_url, pages, source_version
from shared.bulk.waiting import Rounds, WaitingKeys, read_again, waiting_key
from shared.bulk.writer import Item, TargetWriter, writer_for
from shared.catalog.models import Side
from shared.connectors.batching import chunks, pooled
from shared.mapping import CompiledMap, key_to_string, row_hash
from shared.state.models import LedgerEntry
from shared.sync.decisions import DependencyMissing
from shared.sync.handler import ledger_key

log = logging.getLogger("dualsync.bulk")
Row = dict[str, Any]
CHECKPOINT_PREFIX = "initial-sync:"


def checkpoint_name(map_name: str, company: str | None = None) -> str:
    return f"{CHECKPOINT_PREFIX}{map_name}" + (f":{company.lower()}" if company else "")


@dataclass
class Progress:
    """Reported after every page: the map's running totals."""

    map: str
    source: str
    read: int
    written: int
    failed: int
    rate: float  # rows read per second since this run started
    total: int | None  # rows the source holds, when the service counted them
    done: bool = False


@dataclass
class Tally:
    """Rows counted by one page (or a whole run): what a checkpoint adds up."""

    read: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0  # bidirectional second pass: rows the first pass already brought over
    waiting: list[str] = field(default_factory=list)  # keys of rows waiting for a parent of the same map

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.written += other.written
        self.failed += other.failed
        self.skipped += other.skipped


PIPELINE_DEPTH = 2  # pages being written at once (the oldest one's checkpoint comes first)


@dataclass
class MapSummary:
    map: str
    sources: list[str]
    read: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0  # bidirectional second pass: rows the first pass already brought over
    pages: int = 0
    seconds: float = 0.0
    resumed: bool = False
    done: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass
class RunSummary:
    maps: list[MapSummary] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.maps)

    def as_dict(self) -> dict[str, Any]:
        return {"maps": {m.map: m.as_dict() for m in self.maps},
                "read": sum(m.read for m in self.maps), "written": sum(m.written for m in self.maps),
                "failed": self.failed}


ProgressCallback = Callable[[Progress], None]


class InitialSync:
    def __init__(self, ctx: BulkContext, *, progress: ProgressCallback | None = None,
                 page_size: int | None = None, batch_size: int | None = None, concurrency: int | None = None):
        self.ctx = ctx
        self.progress = progress
        s = ctx.settings
        self.page_size = page_size or s.page_size
        self.batch_size = batch_size or s.batch_size
        self.concurrency = concurrency or s.initial_sync_concurrency
        self._writers: dict[Side, TargetWriter] = {}

    def writer(self, target: Side) -> TargetWriter:
        if target not in self._writers:
            self._writers[target] = writer_for(self.ctx, target)
        return self._writers[target]

    async def run(self, maps: Sequence[str] | None = None, *, resume: bool = False) -> RunSummary:
        """Every chosen map (default: all), dependencies first; independent maps concurrently."""
        catalog = {name: cm.map for name, cm in self.ctx.compiled.items()}
        summary = RunSummary()
        for generation in sync_order(catalog, maps):
            results = await asyncio.gather(*(self.sync_map(name, resume=resume) for name in generation))
            summary.maps.extend(results)
        return summary

    async def sync_map(self, name: str, *, resume: bool = False, company: str | None = None,
                       checkpoint: str | None = None, only_pass: int | None = None,
                       key_filter: str | None = None) -> MapSummary:
        """One map (optionally one legal entity of it), from its checkpoint when ``resume``.

        A distributed key-range item passes ``only_pass`` (the index of the master side it reads) and
        ``key_filter`` (its range on that side, an OData condition), so it syncs just its slice.
        """
        cm = self.ctx.compiled[name]
        sides = master_sides(cm.map)
        last_pass = len(sides) - 1 if only_pass is None else only_pass
        cp_name = checkpoint or checkpoint_name(name, company)
        summary = MapSummary(map=name, sources=[s.value for s in sides])
        state = self.ctx.state
        cp = await state.get_checkpoint(cp_name) if resume else None
        start_pass, start_url = 0, None
        if cp is not None:
            data = cp.data
            summary.resumed = True
            summary.read, summary.written = int(data.get("read", 0)), int(data.get("written", 0))
            summary.failed, summary.skipped = int(data.get("failed", 0)), int(data.get("skipped", 0))
            summary.pages = int(data.get("pages", 0))
            if data.get("done"):
                summary.done = True
                return summary
            start_pass, start_url = int(data.get("pass", 0)), data.get("next")
        if only_pass is not None:
            start_pass = max(start_pass, only_pass)
        started = time.perf_counter()
        read_at_start = summary.read
        waiting = WaitingKeys(self.ctx, cp_name)
        resumed_rounds = Rounds.from_dict(cp.data["waiting"]) if cp is not None and cp.data.get("waiting") else None
        self_referencing = any(spec.map == name for spec in cm.lookups.values())
        for index in range(start_pass, last_pass + 1):
            source = sides[index]
            # a second pass (bidirectional without master) leaves alone what the first brought over
            skip_mirrored = index > 0
            total: int | None = None
            depth = 1 if self_referencing else PIPELINE_DEPTH
            slots = asyncio.Semaphore(self.concurrency)
            rounds = resumed_rounds if index == start_pass and resumed_rounds else Rounds()
            window: deque[tuple[asyncio.Task[None], Page, Tally, int | None]] = deque()

            async def save(next_link: str | None, rounds: Rounds | None, source: Side = source,
                           index: int = index) -> bool:
                """The checkpoint: within the pass while pages or waiting rows are left, else past it."""
                within = next_link is not None or rounds is not None
                last = not within and index == last_pass
                await state.put_checkpoint(cp_name, {
                    "map": name, "company": company, "pass": index if within else index + 1,
                    "source": source.value, "next": next_link, "done": last,
                    "read": summary.read, "written": summary.written, "failed": summary.failed,
                    "skipped": summary.skipped, "pages": summary.pages,
                    **({"waiting": rounds.as_dict()} if rounds is not None else {}),
                })
                return last

            def count(tally: Tally) -> None:
                summary.read += tally.read
                summary.written += tally.written
                summary.failed += tally.failed
                summary.skipped += tally.skipped
                summary.seconds = time.perf_counter() - started

            def report(total: int | None, last: bool, source: Side = source) -> None:
                if self.progress:
                    rate = (summary.read - read_at_start) / summary.seconds if summary.seconds > 0 else 0.0
                    self.progress(Progress(name, source.value, summary.read, summary.written, summary.failed,
                                           rate, total, last))

            async def commit(task: asyncio.Task[None], page: Page, tally: Tally, total: int | None,
                             rounds: Rounds = rounds, index: int = index) -> None:
                await task
                count(tally)
                summary.pages += 1
                if tally.waiting:  # stored before the checkpoint that counts them
                    rounds.records += await waiting.write(index, 0, rounds.records, tally.waiting)
                if page.next_link is not None:
                    last = await save(page.next_link, rounds if rounds.records else None)
                else:  # the pages are done: the rows left waiting are retried next
                    last = await save(None, rounds.next_round() if rounds.records else None)
                report(total, last)

            if rounds.round == 0:
                url = start_url if index == start_pass and start_url else await first_url(
                    self.ctx, cm, source, company=company, extra_filter=key_filter)
                try:
                    async for page in self._prefetch(pages(self.ctx, source, url, self.page_size)):
                        total = page.total if page.total is not None else total
                        tally = Tally()
                        task = asyncio.create_task(self._page(cm, source, page.rows, tally, skip_mirrored, slots))
                        window.append((task, page, tally, total))
                        while len(window) >= depth:
                            await commit(*window.popleft())
                        # the page's rows stay referenced by the window only while it is written
                    while window:
                        await commit(*window.popleft())
                finally:
                    for task, *_ in window:  # stopped early: pages not checkpointed are written again on resume
                        task.cancel()
                    for task, *_ in window:
                        with contextlib.suppress(BaseException):
                            await task
                if not rounds.records:
                    continue
                rounds = rounds.next_round()
            # rows that waited for a parent of the same map: retried in rounds while a round writes some
            while rounds.of:
                for seq in range(rounds.read, rounds.of):
                    keys = await waiting.read(index, rounds.round - 1, seq)
                    tally = Tally()
                    # a record's rows together (a few hundred: bounded by RECORD_CHARS), so a parent and
                    # its child in one record meet in the same round
                    rows = [r async for part in read_again(self.ctx, cm, source, keys, self.page_size) for r in part]
                    await self._page(cm, source, rows, tally, skip_mirrored, slots, retry=True,
                                     defer=not rounds.final)
                    del rows
                    if tally.waiting:
                        rounds.records += await waiting.write(index, rounds.round, rounds.records, tally.waiting)
                    rounds.read, rounds.progress = seq + 1, rounds.progress + tally.written
                    count(tally)
                    await save(None, rounds)
                    await waiting.drop(index, rounds.round - 1, seq)
                    report(total, False)
                rounds = rounds.next_round()
                if rounds.of:
                    await save(None, rounds)
            report(total, await save(None, None))
        summary.seconds = time.perf_counter() - started
        summary.done = True
        cp_now = await state.get_checkpoint(cp_name)
        if cp_now is None or not cp_now.data.get("done"):  # an empty source wrote no page checkpoint
            await state.put_checkpoint(cp_name, {"map": name, "company": company, "pass": last_pass + 1, "next": None,
                                                 "done": True, "read": summary.read, "written": summary.written,
                                                 "failed": summary.failed, "skipped": summary.skipped,
                                                 "pages": summary.pages})
            if self.progress:
                self.progress(Progress(name, sides[last_pass].value, summary.read, summary.written, summary.failed,
                                       0.0, summary.read, True))
        log.info("initial sync %s: read %d, written %d, failed %d in %.1f s", name, summary.read,
                 summary.written, summary.failed, summary.seconds)
        return summary

    @staticmethod
    async def _prefetch(source: Any) -> Any:
        """Read the next page while the current one is written; at most one page waits."""
        queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=1)

        async def produce() -> None:
            try:
                async for page in source:
                    await queue.put(page)
                await queue.put(None)
            except BaseException as exc:  # handed to the consumer, which raises it
                await queue.put(exc)

        task = asyncio.create_task(produce())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _page(self, cm: CompiledMap, source: Side, rows: list[Row], summary: Tally,
                    skip_mirrored: bool, slots: asyncio.Semaphore, *, retry: bool = False,
                    defer: bool = True) -> None:
        """Write one page's rows (or, with ``retry``, rows read again that waited: not counted as read).

        A row whose parent is a row of the same map waits for the rest of the page, then is tried
        again; when a try writes nothing, the rows still waiting are kept by key in ``summary.waiting``
        for a later round (``defer``), or fail naming their parent.
        """
        target = source.other
        state = self.ctx.state
        to_target = cm.to_side(target)
        pk = cm.map.dataverse.primary_id
        items: list[Item] = []
        if not retry:
            summary.read += len(rows)
        for row in rows:
            key_text: str | None = None
            record_id = str(row.get(pk)) if source is Side.DATAVERSE and row.get(pk) else None
            version = source_version(source, row)
            try:
                key = cm.integration_key(source, row)
                key_text = key_to_string(key)
                mapped = to_target(row)
            except Exception as exc:  # a row that does not map is kept, the run goes on
                await self._fail(cm, source, key_text, record_id, version, exc, row, summary)
                continue
            items.append(Item(key, key_text, mapped, version, record_id))
        if skip_mirrored and items:
            # one bulk ledger read per page, not a state-store round trip per row
            mirror_keys = [ledger_key(item.key_text, source) for item in items]
            mirrored = await state.get_ledgers(cm.name, mirror_keys)
            kept = []
            for item, mirror_key in zip(items, mirror_keys, strict=True):
                entry = mirrored.get(mirror_key)
                if entry is not None and entry.source_side == target.value:
                    summary.skipped += 1
                else:
                    kept.append(item)
            items = kept
        if not items:
            return
        writer = self.writer(target)
        pending = items
        while pending:
            await writer.prepare(cm, pending)
            ready: list[tuple[Item, Any]] = []
            waiting: list[tuple[Item, DependencyMissing]] = []
            for item in pending:
                try:
                    ready.append((item, await writer.upsert(cm, item)))
                except DependencyMissing as exc:
                    if exc.parent_map == cm.name:
                        waiting.append((item, exc))
                    else:
                        await self._fail(cm, source, item.key_text, item.record_id, item.version, exc, item.row,
                                         summary)
                except Exception as exc:
                    await self._fail(cm, source, item.key_text, item.record_id, item.version, exc, item.row,
                                     summary)
            await self._send(cm, source, target, writer, ready, summary, slots)
            if waiting and not ready:
                for item, missing in waiting:
                    kept_as = waiting_key(source, item.key_text, item.record_id) if defer else None
                    if kept_as is not None:
                        summary.waiting.append(kept_as)
                    else:
                        await self._fail(cm, source, item.key_text, item.record_id, item.version, missing,
                                         item.row, summary)
                waiting = []
            pending = [item for item, _ in waiting]

    async def _send(self, cm: CompiledMap, source: Side, target: Side, writer: TargetWriter,
                    ready: list[tuple[Item, Any]], summary: Tally, slots: asyncio.Semaphore) -> None:
        state = self.ctx.state

        async def send(chunk: Sequence[tuple[Item, Any]]) -> None:
            async with slots:  # shared by the pages in flight: at most ``concurrency`` batches at once
                results = await writer.send(cm, [w for _, w in chunk])
            entries = []
            for (item, _), result in zip(chunk, results, strict=True):
                if result.ok:
                    entries.append(LedgerEntry(map=cm.name, key=ledger_key(item.key_text, target),
                                               source_version=item.version or 0, source_side=source.value,
                                               target_hash=row_hash(item.row)))
                else:
                    assert result.error is not None
                    await self._fail(cm, source, item.key_text, item.record_id, item.version, result.error,
                                     item.row, summary)
            if entries:  # one round trip per batch, not per row
                await state.put_ledgers(entries)
            summary.written += len(entries)

        await pooled(chunks(ready, self.batch_size), self.concurrency, send)

    async def _fail(self, cm: CompiledMap, source: Side, key_text: str | None, record_id: str | None,
                    version: int | None, error: BaseException, row: Row, summary: Tally) -> None:
        summary.failed += 1
        log.warning("initial sync %s: record %s not written: %s", cm.name, key_text or record_id,
                    failures.classify(error).value)
        await failures.keep(self.ctx.state, cm.name, source, key_text, record_id, version, error, row)
