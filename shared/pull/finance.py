"""Finance polling per map by ``ModifiedDateTime`` watermark, across every legal entity.

Checkpoint ``pull:finance:<map>``:

- ``watermark``: the newest ``ModifiedDateTime`` seen by the last complete pass. A new pass reads
  ``ModifiedDateTime ge watermark - overlap``: a row whose transaction committed after a later one
  but carries an older timestamp is still caught. Rows read twice are announced twice; the same row
  version gets the same message id (duplicate detection drops it) and the handler is idempotent.
- ``cursor`` (while a pass is cut short by the budget): the sort position of the last row
  published — ``ModifiedDateTime``, then ``dataAreaId`` and the key fields. The next run goes on
  strictly after it (keyset paging), so a burst of rows with one timestamp cannot stall progress.

First run: the watermark is the entity's newest ``ModifiedDateTime`` (or the epoch when it is
empty) and nothing is published; what exists already is the initial sync's job.

Not seen by a watermark: deletions (a deleted row has no ``ModifiedDateTime`` to find). Finance
deletes reach us through business events only, or ``dualsync reconcile``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.catalog.models import Convert, ConvertType, Side
from shared.connectors.finance import FinanceConnector
from shared.connectors.odata import literal
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.mapping import CompiledMap
from shared.pull.budget import Budget
from shared.pull.publishing import publish
from shared.pull.result import PullMode, PullResult
from shared.state.base import StateStore
from shared.state.models import Checkpoint
from shared.transport.base import Transport

log = logging.getLogger("dualsync.pull")

MODIFIED = "ModifiedDateTime"
ETAG = "@odata.etag"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_OVERLAP = timedelta(minutes=5)
DEFAULT_PAGE_SIZE = 5000


def checkpoint_name(map_name: str) -> str:
    return f"pull:finance:{map_name}"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class FinancePuller:
    def __init__(self, connector: FinanceConnector, state: StateStore, transport: Transport, topic: str,
                 *, page_size: int = DEFAULT_PAGE_SIZE, overlap: timedelta = DEFAULT_OVERLAP):
        self.connector = connector
        self.state = state
        self.transport = transport
        self.topic = topic
        self.page_size = page_size
        self.overlap = overlap

    @staticmethod
    def order_fields(cm: CompiledMap) -> list[str]:
        """The pass's sort order, unique per row: the keyset cursor follows it."""
        company = [cm.map.company.finance_field] if cm.map.company else []
        return [MODIFIED, *company, *cm.map.finance.keys]

    async def pull(self, cm: CompiledMap, budget: Budget) -> PullResult:
        name = checkpoint_name(cm.name)
        checkpoint = await self.state.get_checkpoint(name)
        if checkpoint is None:
            return await self._baseline(cm, name)
        watermark = parse_time(checkpoint.data.get("watermark")) or EPOCH
        cursor: dict[str, Any] | None = checkpoint.data.get("cursor")
        if cursor is not None:
            condition = self._after(cm, cursor)
        else:
            since = max(EPOCH, watermark - self.overlap).replace(microsecond=0)  # stored to the second
            condition = f"{MODIFIED} ge {literal(since)}"
        order = ",".join(f"{f} asc" for f in self.order_fields(cm))
        select = sorted({*cm.finance_select(), *self.order_fields(cm)})
        etag = checkpoint.etag
        # a pass cut short earlier has already seen rows up to its cursor (the order is ascending)
        newest = max(watermark, parse_time((cursor or {}).get(MODIFIED)) or watermark)
        published = pages = skipped = 0
        async for rows in self.connector.query(cm.map.finance.entity_set, select=select, filter=condition,
                                               orderby=order, cross_company=True, page_size=self.page_size):
            if not rows:
                continue
            pages += 1
            notes, bad = self._notifications(cm, rows)
            skipped += bad
            if notes:
                published += await publish(notes, self.transport, self.topic)
            budget.take(len(rows))
            last = rows[-1]
            newest = max(newest, parse_time(last.get(MODIFIED)) or newest)
            position = {f: last.get(f) for f in self.order_fields(cm)}
            etag = (await self._save(name, {"watermark": text(watermark), "cursor": position}, etag)).etag
            log.info("pull %s finance: page %d, %d rows, %d published so far", cm.name, pages, len(rows), published)
            if budget.spent:
                # stopping here even if this was the last page: the next run finds nothing after the cursor
                log.info("pull %s finance: budget spent after %d pages; the next run resumes", cm.name, pages)
                return PullResult(cm.name, Side.FINANCE, PullMode.INCREMENTAL, published, pages, False, skipped)
        await self._save(name, {"watermark": text(newest)}, etag)
        return PullResult(cm.name, Side.FINANCE, PullMode.INCREMENTAL, published, pages, True, skipped)

    async def _baseline(self, cm: CompiledMap, name: str) -> PullResult:
        newest = EPOCH
        async for rows in self.connector.query(cm.map.finance.entity_set, select=[MODIFIED],
                                               orderby=f"{MODIFIED} desc", cross_company=True, page_size=1):
            if rows:
                newest = parse_time(rows[0].get(MODIFIED)) or EPOCH
            break
        await self.state.put_checkpoint(name, {"watermark": text(newest)}, only_if_absent=True)
        log.info("pull %s finance: first run, watermark taken at %s", cm.name, text(newest))
        return PullResult(cm.name, Side.FINANCE, PullMode.BASELINE, 0, 0, True)

    async def _save(self, name: str, data: dict[str, Any], etag: str | None) -> Checkpoint:
        return await self.state.put_checkpoint(name, data, expected_etag=etag)

    def _after(self, cm: CompiledMap, cursor: dict[str, Any]) -> str:
        """Rows strictly after ``cursor`` in the pass's order (lexicographic over the order fields)."""
        dates = {fm.finance for fm in cm.map.fields
                 if isinstance(fm.transform, Convert) and fm.transform.to in (ConvertType.DATE, ConvertType.DATETIME_UTC)}
        dates.add(MODIFIED)

        def lit(field: str) -> str:
            value = cursor.get(field)
            if field in dates and isinstance(value, str):
                moment = parse_time(value)
                if moment is not None:
                    return literal(moment)
            return literal(value)

        fields = self.order_fields(cm)
        alternatives = []
        for i, field in enumerate(fields):
            equal = [f"{f} eq {lit(f)}" for f in fields[:i]]
            alternatives.append("(" + " and ".join([*equal, f"{field} gt {lit(field)}"]) + ")")
        return " or ".join(alternatives)

    @staticmethod
    def _notifications(cm: CompiledMap, rows: list[dict[str, Any]]) -> tuple[list[ChangeNotification], int]:
        notes = []
        skipped = 0
        for row in rows:
            try:
                key = cm.integration_key(Side.FINANCE, row)
            except (KeyError, TypeError, ValueError) as exc:
                key, reason = (), type(exc).__name__
            else:
                reason = "a key part is empty"
            if not key or any(part in (None, "") for part in key):
                skipped += 1
                log.warning("pull %s finance: a row without a complete integration key is skipped (%s)",
                            cm.name, reason)
                continue
            modified = row.get(MODIFIED)
            # The row version's own id: same version -> same message id (deduplicated); a second
            # change within the same second still differs, since Finance's ETag moves on every write.
            version_text = str(row.get(ETAG) or modified)
            notes.append(ChangeNotification(
                map=cm.name, source=Side.FINANCE, key=cm.key_string(Side.FINANCE, row),
                operation=Operation.UNKNOWN,  # a watermark cannot tell a create from an update
                change_id=hashlib.sha256(version_text.encode()).hexdigest()[:32],
                time=parse_time(modified) or datetime.now(UTC), origin=Origin.TIMER,
            ))
        return notes, skipped
