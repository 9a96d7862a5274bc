"""Run many writes as chunked ``$batch`` requests, concurrently, with per-row outcomes.

Each chunk is one ``$batch`` with ``Prefer: odata.continue-on-error`` so a bad row fails alone.
Rows that failed with a retryable error (a throttled or 5xx part) are re-sent in the next attempt
of the same retry loop (so the retry budget bounds the chunk); rows that failed permanently keep
their typed error. A fixed pool of workers (the service's concurrency ceiling) feeds the adaptive
limiter, which decides how many requests are really in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from shared.connectors import batch
from shared.connectors.errors import ConnectorError, Validation
from shared.connectors.http import ServiceClient
from shared.connectors.writes import Write, WriteResult

T = TypeVar("T")
R = TypeVar("R")

PartError = Callable[[Write, batch.Part, batch.PartResponse], ConnectorError]


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def pooled(items: Sequence[T], workers: int, fn: Callable[[T], Awaitable[R]]) -> list[R]:
    """``fn`` over ``items`` with at most ``workers`` running; results in input order."""
    results: list[R | None] = [None] * len(items)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(items)):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            results[i] = await fn(items[i])

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(workers, len(items))):
            tg.create_task(worker())
    return results  # type: ignore[return-value]


async def send_batch(
    http: ServiceClient, chunk: Sequence[tuple[Write, batch.Part]], part_error: PartError
) -> list[WriteResult]:
    """One chunk as a ``$batch``, retrying only the rows that failed retryably."""
    results: dict[int, WriteResult] = {}
    pending = list(range(len(chunk)))

    async def attempt(_: int) -> None:
        nonlocal pending
        content_type, body = batch.build([[chunk[i][1] for i in pending]], atomic=False)
        response = await http.request(
            "POST", "$batch", content=body, retry=False,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
        )
        parts = batch.parse(response.headers.get("content-type", ""), response.content)
        if len(parts) != len(pending):
            raise Validation(
                service=http.service, method="POST", path="$batch", status=response.status_code,
                message=f"batch answered {len(parts)} parts for {len(pending)} requests",
            )
        again: list[int] = []
        first_retryable: ConnectorError | None = None
        for i, part in zip(pending, parts, strict=True):
            write, request = chunk[i]
            if part.ok:
                results[i] = WriteResult(write, None, part.status)
                continue
            error = part_error(write, request, part)
            results[i] = WriteResult(write, error, part.status)
            if error.retryable:
                again.append(i)
                first_retryable = first_retryable or error
        pending = again
        if first_retryable is not None:
            raise first_retryable

    try:
        await http.retry.call(attempt)
    except ConnectorError as exc:
        for i in pending:
            # Keep the row's own last error when it has one; else the batch-level failure.
            if i not in results or results[i].ok:
                results[i] = WriteResult(chunk[i][0], exc, exc.status)
    return [results[i] for i in range(len(chunk))]


async def write_batches(
    http: ServiceClient,
    writes: Sequence[Write],
    part: Callable[[Write], batch.Part],
    *,
    batch_size: int,
    part_error: PartError,
) -> list[WriteResult]:
    """All ``writes`` in chunks of ``batch_size``, concurrently; one result per write, in order.

    Each chunk's parts are built by the worker that sends it, so the first request leaves at once
    and building overlaps the service's work instead of preceding all of it.
    """
    per_chunk = await pooled(
        chunks(writes, batch_size), http.limiter.ceiling,
        lambda c: send_batch(http, [(w, part(w)) for w in c], part_error),
    )
    return [r for chunk_results in per_chunk for r in chunk_results]
