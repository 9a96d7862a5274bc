"""The real function app under ``dualsync host``, against both emulators over loopback.

The host runs as a subprocess from the project folder, as a developer runs it, with its settings
pointing at the session's emulators and its broker, state and keys in tmp_path. The Dataverse
emulator calls the webhook with the function key; the sync function then runs from the broker and
writes the row to Finance.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import EMULATOR_TOKEN
from tests.events.samples import context_body, webhook_headers

ROOT = Path(__file__).resolve().parents[2]


class HostProcess:
    def __init__(self, env: dict[str, str], keys: Path):
        self.keys = keys
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "host", "--port", "0", "--no-timers", "--keys", str(keys)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def url(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.output)
                continue
            if line.startswith("dev host at "):
                return line.split()[3]
        raise AssertionError("the host did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None


def test_webhook_to_finance_through_the_hosted_function_app(emulators, tmp_path):
    dv, fo = emulators
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    env = {**os.environ, "DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url,
           "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": EMULATOR_TOKEN,
           "DUALSYNC_TRANSPORT": "local", "DUALSYNC_STATE_BACKEND": "sqlite",
           "DUALSYNC_BROKER_PATH": str(tmp_path / "broker.sqlite"),
           "DUALSYNC_STATE_SQLITE_PATH": str(tmp_path / "state.sqlite"),
           "DUALSYNC_RETRY_BUDGET_SECONDS": "5", "PYTHONUNBUFFERED": "1"}
    env.pop("DUALSYNC_WEBHOOK_SECRET", None)
    keys_path = tmp_path / "keys.json"
    host = HostProcess(env, keys_path)
    try:
        url = host.url()
        keys = json.loads(keys_path.read_text())
        function_key = keys["functionKeys"]["default"]
        hook = url + "/api/dataverse/webhook"

        # the documented webhook body, without the key or with a wrong one: refused, nothing published
        with httpx.Client(timeout=10) as client:
            for params in ({}, {"code": "not-the-key"}):
                r = client.post(hook, params=params, content=context_body("Update"), headers=webhook_headers())
                assert r.status_code == 401, r.text
                assert function_key not in r.text

        # Dataverse calls the webhook with the function key (webhookkey auth adds ?code=)
        dv.app.state.emulator.register_webhook(hook, tables=["bookableresourcecategory"], auth="webhookkey",
                                               auth_values={"code": function_key})
        with httpx.Client(base_url=dv.url + "/api/data/v9.2/", timeout=10,
                          headers={"Authorization": f"Bearer {EMULATOR_TOKEN}"}) as client:
            r = client.post("bookableresourcecategories", json={"name": "Consultant", "description": "Consultant role"})
            assert r.status_code == 204, r.text
            role_id = r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

        def finance_role():
            rows = [row for row in fo.app.state.emulator.rows("ProjCDSResourceRoles")
                    if row.get("ResourceRoleId") == "Consultant"]
            return rows[0] if rows else None

        row = wait_for(finance_role)
        assert row is not None, "".join(host.output)
        assert (row["Name"], row["IntegrationId"]) == ("Consultant role", role_id)
    finally:
        code = host.stop()
    output = "".join(host.output)
    assert code == 0, output
    assert "stopped" in output and "sync_resource_roles" in output and str(keys_path) in output
    assert keys["masterKey"] not in output and function_key not in output


def test_host_stops_when_the_process_that_started_it_dies(emulators, tmp_path):
    # A chaos run or bench starts the host with --parent-pid; if that parent is killed (pytest killed,
    # Ctrl-C twice), the host must not go on serving as an orphan.
    dv, fo = emulators
    env = {**os.environ, "DUALSYNC_DATAVERSE_URL": dv.url, "DUALSYNC_FINANCE_URL": fo.url,
           "DUALSYNC_AUTH_MODE": "static_token", "DUALSYNC_STATIC_TOKEN": EMULATOR_TOKEN,
           "DUALSYNC_TRANSPORT": "local", "DUALSYNC_STATE_BACKEND": "sqlite",
           "DUALSYNC_BROKER_PATH": str(tmp_path / "broker.sqlite"),
           "DUALSYNC_STATE_SQLITE_PATH": str(tmp_path / "state.sqlite"), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "host.log"
    parent_code = (
        "import os, subprocess, sys\n"
        f"out = open({str(log)!r}, 'w')\n"
        "subprocess.Popen([sys.executable, '-m', 'cli', 'host', '--port', '0', '--no-timers', '--keys',\n"
        f"                  {str(tmp_path / 'keys.json')!r}, '--parent-pid', str(os.getpid())],\n"
        "                 stdout=out, stderr=subprocess.STDOUT)\n"
        "sys.stdin.read()\n"  # live until killed
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, env=env, stdin=subprocess.PIPE)
    hosts: list[psutil.Process] = []
    try:
        assert wait_for(lambda: "dev host at " in log.read_text() if log.exists() else False, 60), \
            log.read_text() if log.exists() else "no host log"
        hosts = psutil.Process(parent.pid).children()
        assert len(hosts) == 1 and "is gone" not in log.read_text()  # alive while its parent is
        parent.kill()
        parent.wait(10)
        assert wait_for(lambda: "\nstopped\n" in log.read_text(), 30), log.read_text()
        assert f"parent process {parent.pid} is gone: stopping" in log.read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
        for host in hosts:  # never leave an orphan behind, even when the assertion failed
            with contextlib.suppress(psutil.NoSuchProcess):
                host.kill()
