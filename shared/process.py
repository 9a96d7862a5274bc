"""What a process builds once from its settings, and how a tool that hosts the app again forgets it.

The function app builds its settings, catalog, sync service, pull service and operations once per worker
process (``get_settings``, ``get_runtime``, and the :class:`BuiltOnce` objects). A tool that starts the app
again in the same process with other settings (the sandbox, the chaos run, tests) must forget all of them
together: forgetting only some leaves a service that writes to the last run's emulators, broker or state
store, and locks bound to the last run's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, TypeVar

T = TypeVar("T")


class BuiltOnce(Generic[T]):
    """A process-wide object built lazily inside the event loop, once, however many callers ask at once."""

    _every: ClassVar[list[BuiltOnce[object]]] = []

    def __init__(self, build: Callable[[], Awaitable[T]]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = asyncio.Lock()
        BuiltOnce._every.append(self)  # type: ignore[arg-type]

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        async with self._lock:
            if self._value is None:
                self._value = await self._build()
        return self._value

    def forget(self) -> None:
        """The next ``get`` builds anew; a new lock, since the old one may belong to another event loop."""
        self._value = None
        self._lock = asyncio.Lock()


def forget_built_services() -> None:
    """Drop every process-wide object built from settings; the next use builds it from the current ones.
    Connections of the dropped objects are not closed here: they belong to the event loop that made them."""
    from shared.runtime import get_runtime
    from shared.settings import get_settings

    get_settings.cache_clear()
    get_runtime.cache_clear()
    for built in BuiltOnce._every:
        built.forget()
