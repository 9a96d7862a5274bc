"""Fixtures for the state-store tests: Azurite (Table Storage emulator) for the session, and a
``store`` fixture parametrized over both implementations so one contract suite runs against each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.state import SqliteStateStore, StateStore
from shared.state.table import TableStateStore

ROOT = Path(__file__).resolve().parents[2]
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
# Azurite's published development account (not a secret: it is the same on every machine).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite-table exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"azurite-table did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    if not AZURITE_TABLE.exists():
        pytest.fail(
            f"Azurite is not installed: {AZURITE_TABLE} is missing. Run `./dev test` (or `npm install` in "
            f"{ROOT}) to install it; the Table Storage state-store tests need it.",
            pytrace=False,
        )
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(AZURITE_TABLE),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so stopping it stops node's children too
    )
    try:
        _wait_listening(port, proc)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(params=["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """A fresh, opened store of each kind."""
    if request.param == "sqlite":
        sqlite_store = SqliteStateStore(tmp_path / "state.sqlite")
        await sqlite_store.open()
        yield sqlite_store
        await sqlite_store.close()
        return
    conn = request.getfixturevalue("azurite_connection_string")
    # A fresh prefix per test keeps tests independent without restarting Azurite.
    table_store = TableStateStore.from_connection_string(conn, prefix="t" + uuid.uuid4().hex[:12])
    await table_store.open()
    yield table_store
    await table_store.drop_tables()
    await table_store.close()
