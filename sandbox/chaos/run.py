"""A seeded chaos run: thousands of live changes through the dev host, the broker and the emulators while
everything that can go wrong does, then proof that it converged.

Phases (the share of the changes each gets):

1. faults (30%): both emulators answer 5xx in bursts, drop connections (reset), hang GETs past the
   connector's timeout, add latency;
2. 429 storm (20%): both emulators admit a few requests per second and answer 429 with Retry-After;
3. host killed (20%): the dev host process gets SIGKILL mid-phase and is started again (broker and state
   are files in the work folder and survive; messages it held come back when their locks expire);
4. Finance down (15%, Dataverse changes only): every Finance request answers 503 for a while;
5. duplicated and reordered notifications (15%): the phase's webhook and business-event bodies are
   captured and posted to the host again, shuffled, half of them twice;
6. permanent failures: project names too long for Finance are dead-lettered (one error record per row,
   however many of its notifications were still queued); the cause is fixed at the source and every open
   error is replayed. Every error kept is sorted against these intended ones (:mod:`intended`).

Then: the broker drains, reconcile reports drift per map, target rows are counted by key, and the error
store is checked (every failure has a reason; after replay none is open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.chaos.capture import CaptureServer, describe, post_again
from sandbox.chaos.driver import ChaosDriver
from sandbox.chaos.hostproc import HostProcess
from sandbox.chaos.intended import IntendedFailure, SortedErrors, names_too_long, sort_errors
from sandbox.chaos.keys import duplicated_keys
from sandbox.chaos.watch import BrokerWatch
from sandbox.run.environment import Environment, app_settings, start_environment
from shared.catalog.models import Side

BASE_FAULTS = "latency:0.05=20;error5xx:0.02=500;reset:0.01;timeout:0.02@GET=4"
BURST_FAULTS = "error5xx:0.6=503;reset:0.05"
OUTAGE = "error5xx=503"

# The host's own settings on top of the sandbox's: a connector timeout the injected hangs exceed, a short
# in-call retry budget so a failing call comes back as a rescheduled notification (the broker's retry).
HOST_SETTINGS = {"DUALSYNC_HTTP_TIMEOUT_SECONDS": "2", "DUALSYNC_RETRY_BUDGET_SECONDS": "3"}
LOCK_SECONDS = 10.0  # messages a killed host held come back this long after the kill


@dataclass
class ChaosOptions:
    changes: int = 5000
    rows: int = 300
    seed: int = 11
    workdir: Path = Path(".dualsync/chaos")
    concurrency: int = 8
    rows_per_map: int = 6
    bad_values: int = 3
    outage_seconds: float = 6.0
    settle_timeout: float = 150.0


@dataclass
class ChaosResult:
    figures: dict[str, Any]
    drift: dict[str, dict[str, int]]
    duplicates: dict[str, int]
    errors_kept: list[dict[str, Any]]
    errors_open_after_replay: list[dict[str, Any]]
    settled: bool
    intended: list[IntendedFailure] = field(default_factory=list)
    sorted_errors: SortedErrors | None = None
    timeline: list[tuple[str, float]] = field(default_factory=list)

    @property
    def unexplained_validation(self) -> list[dict[str, Any]]:
        """Validation failures the run did not cause on purpose (each one is a bug to find)."""
        unintended = self.sorted_errors.unintended if self.sorted_errors else []
        return [e for e in unintended if e["classification"] == "validation"]

    @property
    def converged(self) -> bool:
        return self.settled and all(d["drift"] == 0 for d in self.drift.values()) and not self.duplicates


@contextlib.contextmanager
def app_environment(settings: dict[str, str]) -> Iterator[None]:
    """This process's app settings for the run (the engine reads them), restored afterwards."""
    from shared.process import forget_built_services

    saved = {k: v for k, v in os.environ.items() if k.startswith("DUALSYNC_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(settings)
    forget_built_services()
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("DUALSYNC_")]:
            del os.environ[k]
        os.environ.update(saved)
        forget_built_services()


class ChaosRun:
    def __init__(self, options: ChaosOptions, say: Callable[[str], None] | None = None) -> None:
        self.o = options
        self.say = say or (lambda text: None)
        self.started = time.monotonic()
        self.timeline: list[tuple[str, float]] = []
        self.faults: Counter[str] = Counter()
        self.outage_seconds = 0.0

    def step(self, text: str) -> None:
        self.timeline.append((text, round(time.monotonic() - self.started, 2)))
        self.say(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def run(self) -> ChaosResult:
        o = self.o
        workdir = o.workdir.resolve()
        self.step(f"emulators with {o.rows} demo rows (seed {o.seed})")
        env = start_environment(o.rows, o.seed, workdir)
        settings = app_settings(workdir, env.dataverse.url, env.finance.url, env.token)
        host = HostProcess({**settings, **HOST_SETTINGS}, workdir / "host-keys.json", workdir / "broker.sqlite",
                           log_path=workdir / "host.log")
        env.host = host
        capture = CaptureServer()
        # injected resets make uvicorn log every aborted request; they are counted, not worth a line each
        quiet = logging.getLogger("uvicorn.error")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with app_environment(settings):
                return asyncio.run(self._run(env, host, capture))
        finally:
            quiet.setLevel(level)
            capture.stop()
            env.stop()

    async def _run(self, env: Environment, host: HostProcess, capture: CaptureServer) -> ChaosResult:
        from shared.bulk import BulkContext, InitialSync
        from shared.bulk.reconcile import Reconciler
        from shared.connectors.http import registry
        from shared.operations import Operations
        from shared.runtime import get_runtime
        from shared.state.factory import create_state_store
        from shared.transport.factory import create_transport

        o = self.o
        runtime = get_runtime()
        settings = runtime.settings
        state = create_state_store(settings, table_prefix=settings.state_table_prefix)
        await state.open()
        transport = create_transport(settings)
        ctx = BulkContext.from_settings(settings, runtime.compiled, state)
        ops = Operations(runtime.catalog, state, transport, settings.change_topic)
        driver = ChaosDriver(runtime.catalog, env.dataverse.url, env.finance.url, env.token,
                             finance_key=lambda s: env.fo.entity(s).key, seed=o.seed, concurrency=o.concurrency)
        watch = BrokerWatch(host.broker_path, lambda: env.dv.notifier.pending + env.fo.events.pending)
        try:
            self.step("dev host process: first start creates the broker's entities")
            host.start()
            host.stop()
            await shorten_locks(host.broker_path, LOCK_SECONDS)
            host.start()
            await watch.open()
            sampler = asyncio.create_task(_sample(watch))

            self.step("initial sync of every map")
            await InitialSync(ctx).run()
            env.connect_notifications()
            targets = await driver.discover(o.rows_per_map)
            self.step(f"{len(targets)} rows to edit across "
                      f"{len({(t.map, t.side) for t in targets})} map/side pairs")

            share = {"faults": 0.30, "throttle": 0.20, "kill": 0.20, "outage": 0.15}
            n = {k: int(o.changes * v) for k, v in share.items()}
            n["capture"] = o.changes - sum(n.values())

            self.step(f"phase 1: {n['faults']} changes under 5xx bursts, resets, timeouts, latency")
            bursts = asyncio.create_task(self._bursts(env))
            try:
                await driver.run(n["faults"])
            finally:
                bursts.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bursts
                self._set_faults(env, None)

            self.step(f"phase 2: {n['throttle']} changes in a 429 storm")
            env.dv.set_throttle(60, 1.0)
            env.fo.set_throttle(60, 1.0)
            try:
                await driver.run(n["throttle"])
            finally:
                env.dv.set_throttle(None)
                env.fo.set_throttle(None)

            self.step(f"phase 3: {n['kill']} changes; the dev host is SIGKILLed and restarted mid-way")
            await self._with_kill(driver, host, n["kill"])

            self.step(f"phase 4: Finance answers 503 to everything; {n['outage']} Dataverse changes")
            env.fo.set_faults(OUTAGE)
            outage_started = time.monotonic()
            try:
                await driver.run(n["outage"], sides=(Side.DATAVERSE,))
                await asyncio.sleep(max(0.0, o.outage_seconds - (time.monotonic() - outage_started)))
            finally:
                env.fo.set_faults(None)
            self.outage_seconds = round(time.monotonic() - outage_started, 1)

            self.step(f"phase 5: {n['capture']} changes, notifications captured to be posted again")
            # the same tables and events as the host's own registrations: only mapped ones are sent
            dv_capture = env.dv.register_webhook(f"{capture.url}/dataverse", tables=env.notified_tables)
            fo_capture = env.fo.register_endpoint(url=f"{capture.url}/finance",
                                                  business_event_ids=env.notified_business_events)
            await driver.run(n["capture"])
            await asyncio.to_thread(_drain, env)
            env.dv.unregister(dv_capture)
            env.fo.unregister_endpoint(fo_capture)
            self.step("phase 5: changes made and sent; posting the captured notifications again")
            key = host.function_key
            replay = await post_again(capture.take(), {
                "dataverse": f"{host.url}/api/dataverse/webhook?code={key}",
                "finance": f"{host.url}/api/finance/events?code={key}"}, seed=o.seed)
            self.step(f"posted {replay.posted} captured notifications again "
                      f"({replay.duplicated} duplicated, {replay.out_of_order} out of order)")

            self.step(f"phase 6: {o.bad_values} project names too long for Finance")
            bad = await driver.column_targets(runtime.catalog["projects"], Side.DATAVERSE, "msdyn_subject",
                                              o.bad_values)
            intended = names_too_long(bad)
            for target in bad:
                await driver.edit(target, "X" * 120)
            changes_done = time.monotonic()
            sampler.cancel()

            self.step("waiting for the pipeline to drain")
            settled = await watch.settle(o.settle_timeout)
            converge_seconds = time.monotonic() - changes_done
            kept = await ops.errors(None, status="open", limit=1000)
            sorted_errors = sort_errors(kept, intended)
            self.step(f"drained={settled} in {converge_seconds:.1f}s; {len(kept)} error(s) kept, "
                      f"{len(sorted_errors.intended)} intended, {len(sorted_errors.unintended)} not")
            for e in sorted_errors.unintended[:10]:
                self.step(f"  not intended: {e['map']} {e['key']} {e['classification']} x{e.get('occurrences')}: "
                          f"{e['reason'][:200]}")

            self.step("fixing the causes at the source, replaying every open error")
            for target in bad:
                await driver.edit(target, target.original)
            await watch.settle(o.settle_timeout)
            replayed = 0
            for error in await ops.errors(None, status="open", limit=1000):
                await ops.replay(error["id"])
                replayed += 1
            settled = await watch.settle(o.settle_timeout) and settled
            still_open = await ops.errors(None, status="open", limit=1000)

            self.step("reconciling every map; counting target rows by key")
            drifts = await Reconciler(ctx).run()
            drift = {d.map: {"compared": d.compared, "missing": d.missing, "extra": d.extra,
                             "different": d.different, "drift": d.drift} for d in drifts}
            duplicates = duplicated_keys(runtime.catalog, env)
            total_seconds = time.monotonic() - self.started

            figures = self._figures(env, host, driver, watch, replay, kept, sorted_errors, replayed,
                                    converge_seconds, total_seconds, len(targets))
            result = ChaosResult(figures, drift, duplicates, kept, still_open, settled, timeline=self.timeline,
                                 intended=intended, sorted_errors=sorted_errors)
            self.step("converged" if result.converged else "NOT converged")
            return result
        finally:
            host.stop()
            await watch.close()
            await driver.close()
            await registry.aclose()
            await transport.close()
            await state.close()

    # --- the faults --------------------------------------------------------------------------------

    def _set_faults(self, env: Environment, spec: str | None) -> None:
        env.dv.set_faults(spec)
        env.fo.set_faults(spec, seed=self.o.seed)

    async def _bursts(self, env: Environment) -> None:
        """Steady background faults, with a burst of 5xx for 0.5 s out of every 2 s."""
        while True:
            self._set_faults(env, BASE_FAULTS)
            await asyncio.sleep(1.5)
            self._set_faults(env, f"{BASE_FAULTS};{BURST_FAULTS}")
            self.faults["5xx_bursts"] += 1
            await asyncio.sleep(0.5)

    async def _with_kill(self, driver: ChaosDriver, host: HostProcess, changes: int) -> None:
        before = driver.figures.total
        edits = asyncio.create_task(driver.run(changes))
        while driver.figures.total - before < changes // 2 and not edits.done():
            await asyncio.sleep(0.05)
        host.kill()
        self.faults["host_kills"] += 1
        await asyncio.sleep(1.0)  # notifications sent meanwhile fail; the pull timers catch them
        host.start()
        await edits

    # --- the figures -------------------------------------------------------------------------------

    def _figures(self, env: Environment, host: HostProcess, driver: ChaosDriver, watch: BrokerWatch,
                 replay: Any, kept: list[dict[str, Any]], sorted_errors: SortedErrors, replayed: int,
                 converge_seconds: float, total_seconds: float, targets: int) -> dict[str, Any]:
        dv, fo = env.dv.stats(), env.fo.stats()
        injected: Counter[str] = Counter()
        for stats in (dv, fo):
            injected.update(stats.get("faults", {}))
            injected["429"] += stats.get("throttled", 0)
        injected.update(self.faults)
        injected["duplicated_notifications"] = replay.duplicated
        injected["reordered_notifications"] = replay.out_of_order
        outcomes = dict(host.outcomes)
        return {
            "changes": driver.figures.total,
            "changes_by_side": driver.figures.by_side(),
            "maps_changed": len({k.split("/")[0] for k in driver.figures.changes}),
            "rows_edited": targets,
            "faults_injected": {**injected, "finance_down_seconds": self.outage_seconds},
            "retries": outcomes.get("Retry", 0) + outcomes.get("abandoned", 0),
            "sync_outcomes": outcomes,
            "driver_retries": dict(driver.figures.retries),
            "dead_letters": len(kept),
            "dead_letter_reasons": dict(Counter(e["classification"] for e in kept)),
            "dead_letters_sorted": sorted_errors.figures(),
            "replayed": replayed,
            "notifications_posted_again": describe(replay),
            "host_starts": host.starts,
            "max_backlog": watch.max_backlog,
            "converge_seconds": round(converge_seconds, 1),
            "total_seconds": round(total_seconds, 1),
        }


async def _sample(watch: BrokerWatch) -> None:
    """Backlog every quarter second while changes are made (its peak is a figure)."""
    while True:
        await watch.backlog()
        await asyncio.sleep(0.25)


def _drain(env: Environment, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (env.dv.notifier.pending or env.fo.events.pending) and time.monotonic() < deadline:
        time.sleep(0.02)


async def shorten_locks(broker_path: Path, seconds: float) -> None:
    """Give every queue and subscription a ``seconds`` lock (Service Bus allows 5 s to 5 min per entity),
    so what a killed host held comes back soon; filters, sessions and max deliveries stay as they are."""
    from shared.transport.local.broker import LocalBroker

    broker = LocalBroker(broker_path)
    await broker.open()
    try:
        for e in await broker.entities():
            if e.kind == "subscription":
                assert e.topic is not None
                await broker.create_subscription(
                    e.topic, e.path.rsplit("/", 1)[1], filter=e.filter, requires_session=e.requires_session,
                    lock_duration=seconds, max_delivery_count=e.max_delivery_count)
            elif e.kind == "queue":
                await broker.create_queue(
                    e.path, requires_session=e.requires_session, lock_duration=seconds,
                    max_delivery_count=e.max_delivery_count,
                    duplicate_detection_window=e.duplicate_detection_window
                    if e.duplicate_detection_window is not None else False)
    finally:
        await broker.close()
