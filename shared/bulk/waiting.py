"""Rows of a map that refers to itself, waiting for a parent row of the same map (a task whose parent
task comes on a later page): their keys, kept in the state store, and their rows read again by key.

Only keys are kept, never rows, so memory stays flat however many children wait: a round's keys are
stored as numbered records next to the map's checkpoint (each under the table store's checkpoint
size limit), written before the checkpoint that counts them, so a resumed run finds them. A retry
round reads one record at a time and reads its rows again from the source by key (the source's
primary id on Dataverse, the integration key on Finance), with the map's own ``$select``, ``$expand``
and filter, so the rows have the shape the pages had.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from shared.bulk.context import BulkContext
from shared.bulk.source import first_url, pages
from shared.catalog.models import Side
from shared.connectors.odata import literal
from shared.mapping import CompiledMap
from shared.sync.sides import FinanceSide

Row = dict[str, Any]
RECORD_CHARS = 24_000  # keys per stored record, as JSON text: under the table store's 30,000 limit
READ_KEYS = 25  # key conditions per re-read query: keeps the URL well under the services' limits


class WaitingKeys:
    """The stored keys of one map run's (one checkpoint's) waiting rows, per pass and round."""

    def __init__(self, ctx: BulkContext, checkpoint: str):
        self.ctx = ctx
        self.checkpoint = checkpoint

    def record_name(self, side_pass: int, round_: int, seq: int) -> str:
        return f"{self.checkpoint}~waiting:{side_pass}.{round_}.{seq}"

    async def write(self, side_pass: int, round_: int, first_seq: int, keys: Sequence[str]) -> int:
        """Store ``keys`` as records ``first_seq``, ``first_seq + 1``, …; returns how many records."""
        written = 0
        chunk: list[str] = []
        size = 2
        for key in keys:
            cost = len(json.dumps(key)) + 1
            if chunk and size + cost > RECORD_CHARS:
                await self._put(side_pass, round_, first_seq + written, chunk)
                written, chunk, size = written + 1, [], 2
            chunk.append(key)
            size += cost
        if chunk:
            await self._put(side_pass, round_, first_seq + written, chunk)
            written += 1
        return written

    async def _put(self, side_pass: int, round_: int, seq: int, keys: list[str]) -> None:
        await self.ctx.state.put_checkpoint(self.record_name(side_pass, round_, seq), {"keys": keys})

    async def read(self, side_pass: int, round_: int, seq: int) -> list[str]:
        cp = await self.ctx.state.get_checkpoint(self.record_name(side_pass, round_, seq))
        return list(cp.data.get("keys", [])) if cp is not None else []

    async def drop(self, side_pass: int, round_: int, seq: int) -> None:
        await self.ctx.state.delete_checkpoint(self.record_name(side_pass, round_, seq))


def waiting_key(source: Side, key_text: str | None, record_id: str | None) -> str | None:
    """What a waiting row is read again by: its Dataverse primary id, or its Finance integration key."""
    return record_id if source is Side.DATAVERSE else key_text


def _condition(cm: CompiledMap, source: Side, key: str) -> str:
    if source is Side.DATAVERSE:
        return f"{cm.map.dataverse.primary_id} eq {literal(UUID(key))}"  # a GUID: bare in the filter
    fields = cm.key_fields(Side.FINANCE, tuple(json.loads(key)))
    return f"({FinanceSide._condition(cm, fields)})"


async def read_again(ctx: BulkContext, cm: CompiledMap, source: Side, keys: Sequence[str],
                     page_size: int) -> AsyncIterator[list[Row]]:
    """The source rows of ``keys`` (those still there), a query of ``READ_KEYS`` keys at a time."""
    for i in range(0, len(keys), READ_KEYS):
        expr = " or ".join(_condition(cm, source, k) for k in keys[i:i + READ_KEYS])
        url = await first_url(ctx, cm, source, extra_filter=expr, count=False)
        async for page in pages(ctx, source, url, page_size):
            if page.rows:
                yield page.rows


@dataclass
class Rounds:
    """Where a pass stands with its waiting rows; kept in the map's checkpoint as ``waiting``.

    Round 0 is the pass's pages; round ``n`` retries the records round ``n - 1`` left, one at a time.
    A round after one that wrote nothing is the last: its rows still waiting fail.
    """

    round: int = 0
    read: int = 0  # records of round - 1 retried so far
    of: int = 0  # records round - 1 left
    records: int = 0  # records this round has left so far
    progress: int = 0  # rows this round wrote
    final: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rounds:
        return cls(**{f: data[f] for f in ("round", "read", "of", "records", "progress", "final") if f in data})

    def next_round(self) -> Rounds:
        return Rounds(round=self.round + 1, of=self.records, final=self.round > 0 and self.progress == 0)
