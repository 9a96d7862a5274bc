"""The dev host on its own event loop in a background thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import azure.functions as func

from .host import DevHost


class HostHandle:
    """A running :class:`DevHost`; every method is safe to call from any thread."""

    def __init__(self, host: DevHost, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.host = host
        self._loop = loop
        self._thread = thread

    @property
    def url(self) -> str:
        return self.host.url

    @property
    def function_key(self) -> str:
        return self.host.function_key

    @property
    def master_key(self) -> str:
        return self.host.master_key

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def wait_idle(self, timeout: float, horizon: float = 1.0) -> bool:
        return bool(self._call(self.host.wait_idle(timeout, horizon), timeout + 60))

    def idle_report(self, horizon: float = 1.0) -> dict[str, Any]:
        return dict(self._call(self.host.idle_report(horizon), 60))

    def running_tasks(self) -> list[str]:
        async def read() -> list[str]:
            return self.host.running_tasks()

        return list(self._call(read(), 30))

    def stats(self) -> dict[str, Any]:
        return self.host.stats()

    def stop(self, timeout: float = 60.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.host.stop(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> HostHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(app: func.FunctionApp, **options: Any) -> HostHandle:
    """Start ``DevHost(app, **options)`` on a new loop in a daemon thread; returns once it serves."""
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Cancel what is still running (as asyncio.run does), so `async with` blocks and `finally`
            # clauses run: a task dropped mid-way could leave a process-wide lock held for the next host.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="devhost", daemon=True)
    thread.start()
    host = DevHost(app, **options)
    try:
        asyncio.run_coroutine_threadsafe(host.start(), loop).result(120)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        raise
    return HostHandle(host, loop, thread)
