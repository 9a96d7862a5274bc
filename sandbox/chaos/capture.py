"""Duplicated and reordered notifications: capture real webhook and business-event bodies, post them again.

A second endpoint registered with each emulator receives the same notifications the host gets (the
emulators' own formats and headers). Later the captured requests are posted to the host again, shuffled
and some of them twice, as a retrying or replaying sender would: the pipeline must treat them as the
duplicates and stale news they are.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.httpserver import RunningServer, serve_in_thread

# headers a sender sets about the notification itself (not transport or auth)
_KEEP = ("content-type", "x-ms-dynamics-organization", "x-ms-dynamics-entity-name",
         "x-ms-dynamics-request-name", "x-ms-correlation-request-id", "x-ms-dynamics-msg-size-exceeded")


@dataclass(frozen=True)
class Captured:
    source: str  # "dataverse" | "finance"
    headers: dict[str, str]
    body: bytes


class CaptureServer:
    """Loopback endpoint that records what it is sent (up to ``limit`` requests) and answers 200."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self.captured: list[Captured] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{source}", self._receive, methods=["POST"])])
        self.server: RunningServer = serve_in_thread(app)

    @property
    def url(self) -> str:
        return self.server.url

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in _KEEP}
        with self._lock:
            if len(self.captured) < self.limit:
                self.captured.append(Captured(request.path_params["source"], headers, body))
        return Response(status_code=200)

    def take(self) -> list[Captured]:
        with self._lock:
            taken, self.captured = self.captured, []
        return taken

    def stop(self) -> None:
        self.server.stop()


@dataclass
class ReplayFigures:
    posted: int = 0
    duplicated: int = 0
    out_of_order: int = 0  # positions whose request is not the one captured there
    refused: int = 0  # answered other than 2xx (counted, and asserted zero by the chaos test)
    refused_by_status: dict[int, int] = field(default_factory=dict)


async def post_again(captured: list[Captured], urls: dict[str, str], *, seed: int,
                     duplicate_share: float = 0.5, concurrency: int = 8) -> ReplayFigures:
    """Post ``captured`` again to ``urls[source]`` (the host's endpoints, key included), shuffled,
    with about ``duplicate_share`` of them twice."""
    rng = random.Random(seed)
    order = list(range(len(captured)))
    order += rng.sample(order, int(len(order) * duplicate_share))
    rng.shuffle(order)
    figures = ReplayFigures(duplicated=len(order) - len(captured),
                            out_of_order=sum(1 for i, j in enumerate(order) if i != j))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in order:
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            item = captured[queue.get_nowait()]
            r = await client.post(urls[item.source], content=item.body, headers=item.headers)
            figures.posted += 1
            if not r.is_success:
                figures.refused += 1
                figures.refused_by_status[r.status_code] = figures.refused_by_status.get(r.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return figures


def describe(figures: ReplayFigures) -> dict[str, Any]:
    return {"posted": figures.posted, "duplicated": figures.duplicated, "out_of_order": figures.out_of_order,
            "refused": figures.refused, "refused_by_status": dict(sorted(figures.refused_by_status.items()))}
