"""``dualsync sandbox``: the whole product on loopback, end to end, judged by reconcile.

1. both emulators with demo data (each row on its system of record), the app's settings, the dev host;
2. initial sync of every map in dependency order (the same engine as ``dualsync initial-sync``);
3. webhooks and business events pointed at the host; live changes in both systems (see ``live.py``);
4. wait until nothing is in flight; replay the dead-lettered change after fixing its cause;
5. reconcile every map: a map converged when nothing is missing, extra or different.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.run.environment import DEFAULT_WORKDIR, Environment, start_environment
from sandbox.run.live import LiveDriver

Step = Callable[[str], None]
log = logging.getLogger("dualsync.sandbox")


@dataclass
class SandboxOptions:
    rows: int = 2000
    seed: int = 7
    workdir: Path = DEFAULT_WORKDIR
    settle_timeout: float = 180.0
    # scheduled retries (a child waiting for its parent) come due within this many seconds
    retry_horizon: float = 60.0
    # business-flow scenarios run after the live changes (sandbox/scenarios): None = all, [] = none
    scenarios: list[str] | None = None


@dataclass
class SandboxResult:
    report: dict[str, Any]
    converged: bool  # every map converged and every scenario passed
    timeline: list[tuple[str, float]] = field(default_factory=list)


class Sandbox:
    def __init__(self, options: SandboxOptions, *, step: Step | None = None,
                 progress: Callable[[Any], None] | None = None) -> None:
        self.options = options
        self._step = step or (lambda text: None)
        self.progress = progress
        self.started = time.perf_counter()
        self.timeline: list[tuple[str, float]] = []
        self.env: Environment | None = None
        self.settle_timeouts = 0

    def step(self, text: str) -> None:
        self.timeline.append((text, round(time.perf_counter() - self.started, 2)))
        self._step(text)

    # --- waiting ----------------------------------------------------------------------------------

    def settle(self, horizon: float = 1.0) -> bool:
        """Until the emulators have sent every notification and the host has handled them all."""
        env = self.env
        assert env is not None and env.host is not None
        deadline = time.monotonic() + self.options.settle_timeout
        while time.monotonic() < deadline:
            if env.dv.notifier.pending or env.fo.events.pending:
                time.sleep(0.05)
                continue
            # handling may have written rows whose own notifications are now on their way: look again
            idle = env.host.wait_idle(timeout=max(1.0, deadline - time.monotonic()), horizon=horizon)
            if idle and not (env.dv.notifier.pending or env.fo.events.pending):
                return True
        self._report_busy(env)
        return False

    def _report_busy(self, env: Environment) -> None:
        """Why the run did not settle in time: what the host still holds and where its tasks wait."""
        self.settle_timeouts += 1
        try:
            report = env.host.idle_report(horizon=1.0)
            tasks = env.host.running_tasks()
        except Exception as exc:  # the host itself is stuck: say so rather than hang here too
            log.warning("not settled after %.0f s, and the host does not answer: %r", self.options.settle_timeout, exc)
            return
        log.warning("not settled after %.0f s: notifications pending dataverse=%d finance=%d; host %s; "
                    "tasks: %s", self.options.settle_timeout, env.dv.notifier.pending, env.fo.events.pending,
                    report, "; ".join(tasks) or "none")

    # --- the run ----------------------------------------------------------------------------------

    def run(self) -> SandboxResult:
        o = self.options
        self.step(f"starting the Dataverse and Finance emulators with {o.rows:,} demo rows")
        self.env = env = start_environment(o.rows, o.seed, o.workdir)
        try:
            self.step("starting the dev host (function_app on the embedded broker)")
            env.start_host()
            return asyncio.run(self._run(env))
        finally:
            env.stop()

    async def _run(self, env: Environment) -> SandboxResult:
        from shared.bulk import BulkContext, InitialSync
        from shared.bulk.reconcile import Reconciler
        from shared.connectors.http import registry
        from shared.operations import Operations
        from shared.runtime import get_runtime
        from shared.state.factory import create_state_store
        from shared.transport.factory import create_transport

        runtime = get_runtime()
        settings = runtime.settings
        state = create_state_store(settings, table_prefix=settings.state_table_prefix)
        await state.open()
        transport = create_transport(settings)
        ctx = BulkContext.from_settings(settings, runtime.compiled, state)
        ops = Operations(runtime.catalog, state, transport, settings.change_topic)
        driver = LiveDriver(runtime.catalog, env.dataverse.url, env.finance.url, env.token,
                            finance_key=lambda entity_set: env.fo.entity(entity_set).key)
        loop = asyncio.get_running_loop()

        async def settle(horizon: float = 1.0) -> bool:
            return await loop.run_in_executor(None, self.settle, horizon)

        try:
            self.step("initial sync of every map, in dependency order")
            initial = await InitialSync(ctx, progress=self.progress).run()

            self.step("pointing Dataverse webhooks and Finance business events at the host")
            env.connect_notifications()

            self.step("live changes: one edit per map and source side")
            await driver.edit_every_map()
            await settle()

            self.step("live changes: create a project, then delete it")
            await driver.project_lifecycle(lambda: settle())
            await settle()

            self.step("live changes: a task notified before its new project")

            async def hold() -> None:
                env.hold_dataverse()

            async def release() -> None:
                env.release_dataverse()

            created = await driver.child_before_parent(hold, release)
            await settle()  # the task is now waiting for its project (scheduled again)
            await driver.touch_project(created["project_id"])
            await settle(horizon=self.options.retry_horizon)

            self.step("live changes: a bad value, dead-lettered")
            bad = await driver.bad_value()
            await settle()
            errors = await ops.errors("projects", status="open", limit=500)
            self.step(f"fixing the cause at the source and replaying {len(errors)} error(s)")
            env.hold_dataverse()  # the fix itself must not be what repairs it: the replay is
            await driver.dv_patch("msdyn_projects", bad["project_id"], {"msdyn_subject": bad["subject"]})
            await loop.run_in_executor(None, _drain_dataverse, env)
            env.release_dataverse()
            for error in errors:
                await ops.replay(error["id"])
            await settle(horizon=self.options.retry_horizon)

            scenarios = await self._scenarios(env, ops, settle)

            self.step("reconciling every map")
            drifts = await Reconciler(ctx).run()
            error_counts = await _error_counts(ops)
            report = build_report(self.options, env, initial.as_dict(), drifts, error_counts, driver,
                                  env.host.stats(), self.timeline)
            report["scenarios"] = {name: r.as_dict() for name, r in scenarios.items()}
            report["settle_timeouts"] = self.settle_timeouts
            converged = all(m["converged"] for m in report["maps"].values())
            passed = all(r.passed for r in scenarios.values())
            self.step(("done: every map converged" if converged else "done: some maps did NOT converge")
                      + ("" if passed else "; some scenarios FAILED"))
            return SandboxResult(report, converged and passed, self.timeline)
        finally:
            await driver.close()
            await registry.aclose()
            await transport.close()
            await state.close()

    async def _scenarios(self, env: Environment, ops: Any, settle: Callable[[float], Any]) -> dict[str, Any]:
        """The business-flow scenarios, through the same host, broker and emulators (sandbox/scenarios)."""
        from sandbox.scenarios import run_scenarios, select
        from sandbox.scenarios.pipeline import DataverseApi, FinanceApi, Pipeline

        if not select(self.options.scenarios):
            return {}
        pipeline = Pipeline(DataverseApi(env.dataverse.url, env.token), FinanceApi(env.finance.url, env.token),
                            settle, ops, dv=env.dv, fo=env.fo, host=env.host)
        pipeline.subscribe_finance_events([m.finance.entity_set for m in ops.catalog])
        try:
            return await run_scenarios(pipeline, self.options.scenarios, self.step)
        finally:
            await pipeline.close()


def _drain_dataverse(env: Environment, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while env.dv.notifier.pending and time.monotonic() < deadline:
        time.sleep(0.02)


async def _error_counts(ops: Any) -> dict[str, dict[str, int]]:
    """Per map: errors kept (dead-lettered) and how many of them were replayed."""
    counts: dict[str, dict[str, int]] = {}
    for record in await ops.errors(None, status=None, limit=1000):
        c = counts.setdefault(record["map"], {"dead_lettered": 0, "replayed": 0})
        c["dead_lettered"] += 1
        if record["status"] == "replayed":
            c["replayed"] += 1
    return counts


def build_report(options: SandboxOptions, env: Environment, initial: dict[str, Any], drifts: list[Any],
                 errors: dict[str, dict[str, int]], driver: LiveDriver, host_stats: dict[str, Any],
                 timeline: list[tuple[str, float]]) -> dict[str, Any]:
    maps: dict[str, Any] = {}
    for d in drifts:
        source_rows = d.compared
        target_rows = d.compared - d.missing + d.extra
        rows = {d.source: source_rows, d.target: target_rows}
        e = errors.get(d.map, {"dead_lettered": 0, "replayed": 0})
        maps[d.map] = {
            "dataverse_rows": rows["dataverse"], "finance_rows": rows["finance"],
            "converged": d.drift == 0, "dead_lettered": e["dead_lettered"], "replayed": e["replayed"],
            "source": d.source, "missing": d.missing, "extra": d.extra, "different": d.different,
            "examples": d.examples if d.drift else {},
            "initial_sync": initial["maps"].get(d.map, {}),
            "live_edits": driver.log.edits.get(d.map, []),
        }
    other = {k: v for k, v in errors.items() if k not in maps}  # e.g. ingress queues
    return {
        "rows": options.rows, "seed": options.seed,
        "demo_rows": env.demo_rows,
        "maps": maps,
        "other_errors": other,
        "live": {"actions": driver.log.actions, "skipped": driver.log.skipped},
        "host": host_stats,
        "timeline": [{"step": s, "at_seconds": t} for s, t in timeline],
        "converged": all(m["converged"] for m in maps.values()),
    }
