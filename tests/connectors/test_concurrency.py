import asyncio
import time

from shared.connectors.concurrency import AdaptiveLimiter


async def test_never_more_in_flight_than_limit():
    lim = AdaptiveLimiter(3)
    peak = 0

    async def job():
        nonlocal peak
        async with lim.slot():
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(job() for _ in range(20)))
    assert peak == 3 and lim.in_flight == 0


async def test_halve_once_per_generation_then_additive_increase():
    lim = AdaptiveLimiter(16)
    slots = [await lim.acquire() for _ in range(8)]
    for s in slots:  # eight parallel 429s answering requests sent under the same limit
        await lim.on_throttle(s, None)
    assert lim.limit == 8
    for _ in range(8):
        await lim.release()
    s = await lim.acquire()
    await lim.on_throttle(s, None)  # a new request throttled again: a new signal
    await lim.release()
    assert lim.limit == 4
    for _ in range(4):
        s = await lim.acquire()
        await lim.on_success(s)
        await lim.release()
    assert lim.limit == 5


async def test_never_above_ceiling_nor_below_one():
    lim = AdaptiveLimiter(2)
    for _ in range(50):
        s = await lim.acquire()
        await lim.on_success(s)
        await lim.release()
    assert lim.limit == 2
    for _ in range(5):
        s = await lim.acquire()
        await lim.on_throttle(s, None)
        await lim.release()
    assert lim.limit == 1


async def test_cooldown_gate_blocks_everyone():
    lim = AdaptiveLimiter(8)
    s = await lim.acquire()
    await lim.on_throttle(s, 0.3)
    await lim.release()
    started = time.monotonic()
    acquired = []

    async def job():
        async with lim.slot():
            acquired.append(time.monotonic() - started)

    await asyncio.gather(*(job() for _ in range(5)))
    assert min(acquired) >= 0.29


async def test_increase_wakes_waiters():
    lim = AdaptiveLimiter(2, initial=1)
    first = await lim.acquire()
    waiter = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await lim.on_success(first)  # a run of 1 success at limit 1 raises the limit to 2
    await asyncio.wait_for(waiter, 1)
    assert lim.in_flight == 2
