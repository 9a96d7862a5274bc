"""Pacing: the request window learned from 429s, then mirrored so the service is not overrun."""

from __future__ import annotations

import pytest

from bench.connectors import fo_actual
from shared.connectors import FinanceConnector, Upsert
from shared.connectors.errors import Service, Throttled, classify, request_limit
from shared.connectors.pacing import RequestBudget
from tests.connectors.conftest import settings_for
from tests.connectors.pacing_sim import simulate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def burst(budget: RequestBudget, clock: Clock, n: int, step: float = 0.01) -> list[float]:
    sent = []
    for _ in range(n):
        sent.append(budget.sent())
        clock.now += step
    return sent


def test_unlearned_budget_never_holds():
    clock = Clock()
    b = RequestBudget(clock)
    burst(b, clock, 100)
    assert b.wait() == 0.0 and not b.learned


def test_first_throttle_teaches_budget_and_window():
    clock = Clock()
    b = RequestBudget(clock)
    admitted = burst(b, clock, 20)  # t = 0.00 .. 0.19, in flight
    rejected = b.sent()  # t = 0.20
    for s in admitted[:15]:
        b.admitted(s)
    clock.now = 0.25
    b.throttled(rejected, retry_after=2.0)  # 5 admitted ones are still in flight: they count
    assert b.budget == 20
    assert b.window == pytest.approx(2.25)  # from the oldest send to now + Retry-After
    for s in admitted[15:]:
        b.admitted(s)
    # Full window: the first slot frees when the oldest answer (t=0.20) leaves it.
    assert b.wait() == pytest.approx(0.20 + 2.25 - 0.25)
    clock.now = 2.5
    assert b.wait() == 0.0


def test_echoes_of_the_same_episode_teach_nothing():
    clock = Clock()
    b = RequestBudget(clock)
    admitted = burst(b, clock, 10)
    late = [b.sent(), b.sent()]
    for s in admitted:
        b.admitted(s)
    clock.now = 0.3
    b.throttled(late[0], retry_after=1.0)
    # The other late one, still in flight, may have been admitted ahead of the rejected one.
    assert b.describe() == {"budget": 11, "window_seconds": pytest.approx(1.3)}
    clock.now = 0.4
    b.throttled(late[1], retry_after=1.0)  # it was not: taken off again, and the window stays
    assert b.describe() == {"budget": 10, "window_seconds": pytest.approx(1.3)}


def test_in_flight_requests_count_against_the_window():
    clock = Clock()
    b = RequestBudget(clock)
    b.throttled(b.sent(), retry_after=1.0, limit=(3, 10.0))
    burst(b, clock, 3)  # three in flight, none answered
    assert b.wait() == 10.0  # only an answer can make room; the limiter wakes waiters on release


def test_stated_limit_wins_over_learning():
    clock = Clock()
    b = RequestBudget(clock)
    for s in burst(b, clock, 7):
        b.admitted(s)
    b.throttled(b.sent(), retry_after=5.0, limit=(6000, 300.0))
    assert b.describe() == {"budget": 6000, "window_seconds": 300.0}


def test_throttle_with_room_left_shrinks_budget_or_grows_window():
    clock = Clock()
    b = RequestBudget(clock)
    b.throttled(b.sent(), retry_after=1.0, limit=(10, 1.0))
    clock.now = 5.0
    for s in burst(b, clock, 4):  # another client shares the budget: rejected after 4 of ours
        b.admitted(s)
    b.throttled(b.sent(), retry_after=1.0)
    assert b.budget == 4
    clock.now = 10.0
    for s in burst(b, clock, 4, step=0.2):  # 4 admitted over 0.8 s, then rejected: window is longer
        b.admitted(s)
    b.throttled(b.sent(), retry_after=1.0)
    assert b.budget == 4 and b.window == pytest.approx(10.8 + 1.0 - 10.0)


def test_stated_limits_in_both_services_wording():
    assert request_limit("Number of requests exceeded the limit of 6000 over time window of 300 seconds.") == (6000, 300.0)
    assert request_limit("Number of requests exceeded the limit of 6000 over the time window of 300 seconds.") == (6000, 300.0)
    assert request_limit("Number of concurrent requests exceeded the limit of 52.") is None
    err = classify(service=Service.DATAVERSE, method="POST", path="/x", status=429, headers={"retry-after": "3"},
                   body={"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of "
                                   "20 over time window of 2 seconds."}})
    assert isinstance(err, Throttled) and err.retry_after == 3.0 and err.limit == (20, 2.0)


async def test_after_the_first_throttle_the_window_is_not_overrun(recorded, pooled_clients):
    """Finance states no limit in its 429: the window is learned, then paced (a few probes aside)."""
    from sandbox import finance

    srv, log = recorded(finance.create_app(token="t"))
    emu = srv.app.state.emulator
    emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    emu.load_rows("ProjCDSProjects", [{"dataAreaId": "usmf", "ProjectID": "PRJ-1", "ProjectName": "One",
                                       "ProjectType": "TimeMaterial"}])
    fo = FinanceConnector.from_settings(settings_for(finance_url=srv.url, batch_size=2))
    emu.set_throttle(4, 1.0)
    rows = [Upsert(*fo_actual(n)) for n in range(40)]
    results = await fo.write_batch("ProjCDSActualsImports", rows, expect="new")
    assert [r.error for r in results if not r.ok] == [] and emu.count("ProjCDSActualsImports") == 40
    statuses = [s for _, _, s, _ in sorted(log.entries)]
    first_429 = statuses.index(429)
    resumed = first_429 + statuses[first_429:].index(200)
    # Paced from then on: only failed probes (and the requests already in flight with them) are throttled.
    assert statuses[resumed:].count(429) <= 8 * (fo.http.limiter.budget.probes_failed + 1)
    assert statuses.count(200) == 20
    budget = fo.http.limiter.budget
    assert budget.budget == 4 and 0.8 <= (budget.window or 0) <= 2.0
    assert log.sent_during_cooldown() == []
    # (how long it took is the connectors bench's figure, not asserted here: CI machines' load varies)


# --- the learned window, tightened: simulated time, so exact and machine-independent -----------------

def test_probing_tightens_a_window_learned_from_whole_second_retry_after():
    """A 2 s window first bounds at ~2.4 s (Retry-After rounds up); probing brings it within a few %."""
    out = simulate(budget=20, window=2.0, requests=2000, seed=3)
    assert out.budget == 20
    assert out.windows[0] > 2.2 and 1.7 <= (out.window or 0) <= 2.1
    assert out.efficiency(20, 2.0, 2000) >= 0.9
    assert out.throttled <= 40  # the first episode's burst plus a handful of failed probes


def test_a_long_window_is_learned_within_a_few_percent():
    out = simulate(budget=300, window=20.0, requests=3000, seed=5, down=(0.05, 0.5))
    assert out.budget == 300 and 19.0 <= (out.window or 0) <= 20.6
    assert out.efficiency(300, 20.0, 3000) >= 0.9


def test_requests_overtaking_each_other_do_not_inflate_the_budget():
    """Wide latency jitter: some requests sent before the first rejected one arrive after it."""
    for seed in range(1, 6):
        out = simulate(budget=20, window=2.0, requests=400, seed=seed, up=(0.001, 0.2))
        assert out.budget == 20, seed


def test_a_stated_limit_is_exact_and_never_probed():
    clock = Clock()
    b = RequestBudget(clock)
    b.throttled(b.sent(), retry_after=1.0, limit=(3, 10.0))
    for _ in range(20):
        clock.now += 4.0
        b.admitted(b.sent(), paced=True)
    assert b.describe() == {"budget": 3, "window_seconds": 10.0} and b.converged


def test_a_failed_probe_raises_the_floor_and_backs_off():
    clock = Clock()
    b = RequestBudget(clock)
    first = burst(b, clock, 4)
    rejected = b.sent()
    for s in first:
        b.admitted(s)
    clock.now = 0.1
    b.throttled(rejected, retry_after=2.0)  # learns 4 per ~2.1 s
    assert b.budget == 4 and b.window == pytest.approx(2.1)
    clock.now = 3.0
    for s in burst(b, clock, 4, step=0.1):  # half a budget of paced admissions makes the window good
        b.admitted(s, paced=True)
    probe = b.window
    assert probe is not None and probe < 2.1 and b.good == pytest.approx(2.1)
    b.throttled(b.sent(), retry_after=1.0, paced=True)  # sent under the probe: it was too short
    assert b.floor == pytest.approx(probe) and b.probes_failed == 1 and b.budget == 4
    assert probe < (b.window or 0) < 2.1
