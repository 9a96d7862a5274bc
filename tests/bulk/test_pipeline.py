"""Pipelined pages: several pages in flight never exceed the batch concurrency, and the checkpoints
still come in page order with counts that add up to the rows written."""

from __future__ import annotations

from typing import Any

from shared.bulk import InitialSync
from shared.bulk.engine import checkpoint_name
from shared.catalog.models import Side
from tests.bulk.test_resume_reconcile_distributed import worker_rows


async def test_pages_pipelined_within_concurrency_and_checkpointed_in_order(bulk) -> None:
    ctx, dv, fo = bulk
    fo.app.state.emulator.load_rows("Workers", worker_rows(240))
    sync = InitialSync(ctx, page_size=30, batch_size=10, concurrency=2)
    writer = sync.writer(Side.DATAVERSE)
    in_flight = peak = 0
    send = writer.send

    async def counting(cm: Any, writes: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await send(cm, writes)
        finally:
            in_flight -= 1

    writer.send = counting  # type: ignore[method-assign]
    seen: list[tuple[int, int]] = []
    put = ctx.state.put_checkpoint

    async def record(name: str, data: dict[str, Any], **kw: Any) -> Any:
        if name == checkpoint_name("workers"):
            seen.append((data["pages"], data["written"]))
        return await put(name, data, **kw)

    ctx.state.put_checkpoint = record  # type: ignore[method-assign]
    summary = (await sync.run(["workers"])).maps[0]
    total = fo.app.state.emulator.count("Workers")
    assert summary.failed == 0 and summary.written == total == dv.app.state.emulator.count("cdm_workers")
    assert 1 <= peak <= 2
    pages = [p for p, _ in seen]
    assert pages == list(range(1, len(pages) + 1)) and len(pages) >= total // 30
    written = [w for _, w in seen]
    assert written == sorted(written) and written[-1] == total
