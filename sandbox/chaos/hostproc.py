"""The dev host as a child process (``dualsync host``), so a chaos run can SIGKILL it and start it again.

A killed host loses what it held in memory; the broker and the state store are SQLite files in the work
folder and survive, as Service Bus and Table Storage do in Azure. The restarted host listens on the same
port with the same keys file, so the webhooks registered with the emulators keep working.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

from sandbox.httpserver import free_port
from sandbox.run.environment import PROJECT_ROOT

# The app's own log lines (INFO, with ``-v``): one per handled notification, and the host's abandons.
# Only the service's INFO line: the handler's WARNING for a failure ("sync M from S (K): Error -> Retry")
# also ends in the outcome, and counting both doubled every retry and dead letter.
_OUTCOME = re.compile(r" INFO dualsync\.sync: sync \S+ .* -> (\w+)$")
_ABANDONED = re.compile(r" failed on message .* \(delivery \d+\)")
_DEAD_LETTERED = re.compile(r" dead-lettered after \d+ deliveries")


class HostStartError(RuntimeError):
    """The host process exited or stayed silent instead of printing its URL."""


class HostProcess:
    """``python -m cli.main host`` with the run's app settings; ``kill()`` is SIGKILL, ``stop()`` SIGTERM."""

    def __init__(self, settings: dict[str, str], keys_path: Path, broker_path: Path, *,
                 port: int | None = None, sessions: int = 8, log_path: Path | None = None,
                 verbose: bool = True) -> None:
        # ``verbose``: the app's INFO lines, which the chaos run counts outcomes from; a benchmark leaves
        # them off, as a deployed app logs warnings and up.
        self.settings = settings
        self.keys_path = keys_path
        self.broker_path = broker_path
        self.port = port or free_port()
        self.sessions = sessions
        self.verbose = verbose
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self.kills = 0
        self._tail: deque[str] = deque(maxlen=40)
        # what the host's log says happened, across restarts: outcomes by type, abandons, dead letters
        self.outcomes: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def function_key(self) -> str:
        return str(json.loads(self.keys_path.read_text())["functionKeys"]["default"])

    @property
    def master_key(self) -> str:
        return str(json.loads(self.keys_path.read_text())["masterKey"])

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUALSYNC_")}
        env.update(self.settings)
        cmd = [sys.executable, "-m", "cli.main", "host", "--port", str(self.port), "--keys", str(self.keys_path),
               "--broker", str(self.broker_path), "--sessions", str(self.sessions),
               "--parent-pid", str(os.getpid())] + (["--verbose"] * self.verbose)
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.starts += 1
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc, ready), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill_quietly()
                raise HostStartError("the dev host did not start:\n" + "\n".join(self._tail))

    def _pump(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        # Read the child's output so its pipe never fills; keep a tail for error messages.
        assert proc.stdout is not None
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in proc.stdout:
                text = line.rstrip()
                self._tail.append(text)
                if m := _OUTCOME.search(text):
                    self.outcomes[m.group(1)] += 1
                elif _ABANDONED.search(text):
                    self.outcomes["abandoned"] += 1
                elif _DEAD_LETTERED.search(text):
                    self.outcomes["dead_lettered_by_host"] += 1
                if log:
                    log.write(line)
                if line.startswith("dev host at "):
                    ready.set()
        finally:
            if log:
                log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no grace, no cleanup; messages it held stay locked until their locks expire."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_quietly()

    def _kill_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self) -> str:
        return "\n".join(self._tail)
