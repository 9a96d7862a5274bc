"""Unit tests of the fault spec parser, the seeded decisions and the throttle."""

from __future__ import annotations

import pytest

from sandbox.faults import FaultPlan, FaultRule, Throttle


def test_parse_full_grammar() -> None:
    plan = FaultPlan.parse("latency:0.2=50;error5xx:0.05@PATCH/msdyn_actuals*;reset:0.01;timeout@GET=2")
    assert plan.rules == (
        FaultRule("latency", 0.2, None, None, 50.0),
        FaultRule("error5xx", 0.05, "PATCH", "msdyn_actuals*", 503.0),
        FaultRule("reset", 0.01, None, None, None),
        FaultRule("timeout", 1.0, "GET", None, 2.0),
    )
    # the canonical text parses back to the same rules
    assert FaultPlan.parse(plan.spec).rules == plan.rules


@pytest.mark.parametrize("spec", [None, "", "  ", ";"])
def test_empty_spec_is_an_empty_plan(spec: str | None) -> None:
    plan = FaultPlan.parse(spec)
    assert not plan
    assert plan.decide("GET", "/data/X").is_clean


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ("explode:0.5", "explode:0.5"),
        ("latency:1.5", "latency:1.5"),
        ("latency;error5xx=404", "error5xx=404"),
        ("reset=3", "reset=3"),
        ("latency:abc", "latency:abc"),
        ("error5xx@PATCH@GET", "error5xx@PATCH@GET"),
    ],
)
def test_invalid_rule_is_named(spec: str, bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[")):
        FaultPlan.parse(spec)


def test_decisions_are_deterministic_per_seed() -> None:
    spec = "latency:0.3=10;error5xx:0.2;reset:0.1"
    requests = [("GET", f"/data/E{i}") for i in range(500)]
    a = [FaultPlan.parse(spec, seed=7).decide(m, p) for m, p in requests[:1]]
    plan1, plan2, plan3 = (FaultPlan.parse(spec, seed=s) for s in (7, 7, 8))
    seq1 = [plan1.decide(m, p) for m, p in requests]
    seq2 = [plan2.decide(m, p) for m, p in requests]
    seq3 = [plan3.decide(m, p) for m, p in requests]
    assert seq1 == seq2
    assert seq1 != seq3
    assert a[0] == seq1[0]


def test_rates_are_roughly_honoured() -> None:
    plan = FaultPlan.parse("error5xx:0.1;latency:0.5=5", seed=1)
    decisions = [plan.decide("POST", "/x") for _ in range(10_000)]
    errors = sum(1 for d in decisions if d.terminal is not None)
    slow = sum(1 for d in decisions if d.latency_ms)
    assert 800 < errors < 1200
    assert 4_600 < slow < 5_400


def test_method_and_path_filters() -> None:
    plan = FaultPlan.parse("error5xx@PATCH/msdyn_actuals*=500")
    assert plan.decide("PATCH", "/api/data/v9.2/msdyn_actuals(1)").terminal is not None
    assert plan.decide("patch", "/api/data/v9.2/msdyn_actuals(1)").terminal is not None
    assert plan.decide("GET", "/api/data/v9.2/msdyn_actuals(1)").terminal is None
    assert plan.decide("PATCH", "/api/data/v9.2/accounts(1)").terminal is None
    whole = FaultPlan.parse("reset/data/Proj*")
    assert whole.decide("GET", "/data/ProjCDSProjects").terminal is not None
    assert whole.decide("GET", "/data/LegalEntities").terminal is None


def test_latencies_add_and_first_terminal_wins() -> None:
    plan = FaultPlan.parse("latency=10;latency=15;error5xx=502;reset")
    d = plan.decide("GET", "/")
    assert d.latency_ms == 25
    assert d.terminal is not None and d.terminal.kind == "error5xx" and d.terminal.param == 502


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_window_and_retry_after() -> None:
    clock = FakeClock()
    t = Throttle(requests_per_window=3, window_seconds=10, clock=clock)
    for _ in range(3):
        assert t.acquire() is None
        t.release()
    clock.now += 2.5
    assert t.acquire() == 8.0  # oldest admitted leaves the window 7.5 s from now; rounded up
    clock.now += 7.5
    assert t.acquire() is None  # the window slid; the rejected request did not count


def test_throttle_concurrency() -> None:
    t = Throttle(concurrent=2)
    assert t.acquire() is None and t.acquire() is None
    assert t.acquire() == 1.0
    t.release()
    assert t.acquire() is None
    assert t.active == 2


@pytest.mark.parametrize("kwargs", [{"requests_per_window": 0}, {"concurrent": 0}, {"window_seconds": 0}])
def test_throttle_rejects_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Throttle(**kwargs)  # type: ignore[arg-type]
