"""Many live changes, as users make them: PATCHes of copied text columns over each system's own API.

The driver picks, for every map and each of its source sides, a few rows with a plain-copy text column
(:func:`sandbox.run.live.editable_field`) and edits them in a seeded order, several at a time. The same
rows are edited again and again, so notifications of one record overlap and arrive out of order.

A user's client retries what the service refuses for a while (5xx, a dropped connection, 429 with
Retry-After): so does the driver, and it counts those retries apart from the pipeline's.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.run.live import DATAVERSE_API, FINANCE_API, editable_field
from shared.catalog.models import Catalog, Side, TableMap
from shared.connectors.odata import entity_path


class DriverGaveUp(RuntimeError):
    """A change was still refused after every retry (the sandbox's data or the emulator is wrong)."""


@dataclass(frozen=True)
class Target:
    """One source row the driver edits, and the column it edits."""

    map: str
    side: Side
    path: str  # relative URL of the row on its side
    column: str
    original: str


@dataclass
class DriverFigures:
    changes: Counter[str] = field(default_factory=Counter)  # "map/side" -> edits made
    retries: Counter[str] = field(default_factory=Counter)  # why the driver had to send again

    @property
    def total(self) -> int:
        return sum(self.changes.values())

    def by_side(self) -> dict[str, int]:
        sides: Counter[str] = Counter()
        for key, n in self.changes.items():
            sides[key.split("/")[1]] += n
        return dict(sides)


def edited(original: str, n: int) -> str:
    """The original text with a change number at its end, never longer than the original (column limits)."""
    tag = f"~{n}"
    if len(original) <= len(tag):
        return tag[-max(1, len(original)):]
    return original[: len(original) - len(tag)] + tag


class ChaosDriver:
    def __init__(self, catalog: Catalog, dataverse_url: str, finance_url: str, token: str,
                 finance_key: Any, *, seed: int, concurrency: int = 8) -> None:
        self.catalog = catalog
        self.finance_key = finance_key
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.clients = {
            Side.DATAVERSE: httpx.AsyncClient(base_url=f"{dataverse_url.rstrip('/')}/{DATAVERSE_API}/",
                                              headers=headers, timeout=10, limits=limits),
            Side.FINANCE: httpx.AsyncClient(base_url=f"{finance_url.rstrip('/')}/{FINANCE_API}/",
                                            headers=headers, timeout=10, limits=limits),
        }
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.targets: list[Target] = []
        self.figures = DriverFigures()
        self.latest: dict[str, str] = {}  # row path -> the value the driver wrote last
        # called once an edit is committed (its response received): (target, value written, change number)
        self.on_edit: Callable[[Target, str, int], None] | None = None
        self._n = 0

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    # --- choosing rows ------------------------------------------------------------------------------

    async def discover(self, rows_per_map: int = 6) -> list[Target]:
        """The rows to edit: up to ``rows_per_map`` per map and source side."""
        for m in self.catalog:
            for side in m.sources:
                for row in await self._first(m, side, rows_per_map * 3):
                    column = editable_field(m, side, row)
                    if column is None:
                        continue
                    self.targets.append(Target(m.name, side, self._path(m, side, row), column, row[column]))
                    if sum(1 for t in self.targets if t.map == m.name and t.side == side) >= rows_per_map:
                        break
        return self.targets

    async def column_targets(self, m: TableMap, side: Side, column: str, count: int) -> list[Target]:
        """``count`` rows of ``m`` on ``side`` whose ``column`` holds text (for deliberate bad values)."""
        rows = [r for r in await self._first(m, side, count * 3) if isinstance(r.get(column), str)]
        return [Target(m.name, side, self._path(m, side, r), column, r[column]) for r in rows[:count]]

    async def _first(self, m: TableMap, side: Side, top: int) -> list[dict[str, Any]]:
        if side == Side.DATAVERSE:
            params = {"$top": str(top)}
            entity_set = m.dataverse.entity_set
        else:
            params = {"$top": str(top), "cross-company": "true"}
            entity_set = m.finance.entity_set
        r = await self._send(side, "GET", entity_set, params=params)
        return list(r.json()["value"])

    def _path(self, m: TableMap, side: Side, row: dict[str, Any]) -> str:
        if side == Side.DATAVERSE:
            return f"{m.dataverse.entity_set}({row[m.dataverse.primary_id]})"
        fields: Sequence[str] = self.finance_key(m.finance.entity_set)
        key = {k: row[k] for k in fields if k in row}
        if "dataAreaId" in row:
            key["dataAreaId"] = row["dataAreaId"]
        return entity_path(m.finance.entity_set, key) + "?cross-company=true"

    # --- changing them ------------------------------------------------------------------------------

    async def run(self, changes: int, *, sides: Sequence[Side] = (Side.DATAVERSE, Side.FINANCE),
                  rate: float | None = None) -> int:
        """Make ``changes`` edits on rows of the given source sides, ``concurrency`` at a time
        (and at most ``rate`` per second if given); returns how many were made."""
        pool = [t for t in self.targets if t.side in sides]
        if not pool:
            raise DriverGaveUp(f"no editable rows on {', '.join(s.value for s in sides)}")
        plan = [self.rng.choice(pool) for _ in range(changes)]
        queue: asyncio.Queue[Target] = asyncio.Queue()
        for target in plan:
            queue.put_nowait(target)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def worker(index: int) -> None:
            while not queue.empty():
                target = queue.get_nowait()
                if rate:
                    done = changes - queue.qsize() - 1
                    await asyncio.sleep(max(0.0, started + done / rate - loop.time()))
                await self.edit(target)

        await asyncio.gather(*(worker(i) for i in range(self.concurrency)))
        return changes

    async def edit(self, target: Target, value: str | None = None) -> None:
        self._n += 1
        n = self._n
        value = value if value is not None else edited(target.original, n)
        headers = {"If-Match": "*"} if target.side == Side.DATAVERSE else {}
        await self._send(target.side, "PATCH", target.path, json={target.column: value}, headers=headers)
        self.latest[target.path] = value
        if self.on_edit is not None:
            self.on_edit(target, value, n)
        self.figures.changes[f"{target.map}/{target.side.value}"] += 1

    async def _send(self, side: Side, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = self.clients[side]
        for _ in range(60):
            try:
                r = await client.request(method, url, **kwargs)
            except httpx.TransportError as exc:  # reset or timed out: not applied (faults hit before the app)
                self.figures.retries[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 429:
                self.figures.retries["429"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code >= 500:
                self.figures.retries[str(r.status_code)] += 1
                await asyncio.sleep(0.1)
                continue
            if r.is_error:
                raise DriverGaveUp(f"{method} {url}: {r.status_code} {r.text[:300]}")
            return r
        raise DriverGaveUp(f"{method} {url}: still refused after 60 attempts")
