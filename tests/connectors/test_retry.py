import asyncio
import time

import pytest

from shared.connectors.errors import Auth, Service, Throttled, Transient, Validation
from shared.connectors.retry import RetryPolicy

KW = {"service": Service.DATAVERSE, "method": "GET", "path": "/p"}


def flaky(errors, result="ok"):
    calls = []

    async def fn(attempt):
        calls.append((attempt, time.monotonic()))
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


async def test_transient_then_success():
    fn, calls = flaky([Transient(**KW), Transient(**KW)])
    assert await RetryPolicy(5, initial=0.01, cap=0.02).call(fn) == "ok"
    assert [a for a, _ in calls] == [1, 2, 3]


@pytest.mark.parametrize("error", [Validation(**KW), Auth(**KW), ValueError("not ours")])
async def test_permanent_errors_are_not_retried(error):
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        await RetryPolicy(5, initial=0.01).call(fn)
    assert len(calls) == 1


async def test_retry_after_honoured():
    fn, calls = flaky([Throttled(retry_after=0.3, **KW)])
    await RetryPolicy(5, initial=0.0, cap=0.0).call(fn)
    assert calls[1][1] - calls[0][1] >= 0.3


async def test_budget_bounds_total_time():
    # Retry-After beyond the budget: give up at once with the throttle, don't sleep past the deadline.
    fn, calls = flaky([Throttled(retry_after=10, **KW)])
    started = time.monotonic()
    with pytest.raises(Throttled):
        await RetryPolicy(1.0).call(fn)
    assert time.monotonic() - started < 0.5 and len(calls) == 1


async def test_budget_with_endless_transients():
    async def always(attempt):
        raise Transient(**KW)

    started = time.monotonic()
    with pytest.raises(Transient):
        await RetryPolicy(0.5, initial=0.05, cap=0.1).call(always)
    assert time.monotonic() - started <= 0.6


def test_full_jitter_bounds():
    seen = []
    policy = RetryPolicy(10, initial=1.0, cap=8.0, rand=lambda lo, hi: seen.append((lo, hi)) or hi)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(lo == 0.0 for lo, _ in seen)


async def test_cancellation_is_not_swallowed():
    async def slow(attempt):
        await asyncio.sleep(10)

    task = asyncio.ensure_future(RetryPolicy(5).call(slow))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
