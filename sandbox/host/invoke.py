"""Call a user function as the Python worker does: trigger argument, ``Out`` arguments, context.

Sync functions run in a worker thread and async ones on the host's loop, like the worker. What the
function set on its output bindings (or returned, for a ``$return`` output) is handed back.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.functions import _abc

from .discovery import HostedFunction


class OutValue(func.Out[Any]):
    """What an output binding argument holds once the function returns."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class _Retry(_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int):
        self._count, self._max = retry_count, max_retry_count

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self) -> Any:
        return None


class _Trace(_abc.TraceContext):
    def __init__(self, invocation_id: str):
        self._parent = f"00-{uuid.uuid4().hex}-{invocation_id.replace('-', '')[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    def __init__(self, function_name: str, retry_count: int = 0, max_retry_count: int = 0):
        self._id = str(uuid.uuid4())
        self._name = function_name
        self._retry = _Retry(retry_count, max_retry_count)
        self._trace = _Trace(self._id)
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._id

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return "."

    @property
    def retry_context(self) -> _abc.RetryContext:
        return self._retry

    @property
    def trace_context(self) -> _abc.TraceContext:
        return self._trace

    @property
    def thread_local_storage(self) -> Any:
        return self._tls


@dataclass
class Invocation:
    result: Any
    outputs: dict[str, Any] = field(default_factory=dict)  # binding name ("$return" too) -> value set


async def invoke(fn: HostedFunction, trigger_value: Any, *, retry_count: int = 0,
                 max_retry_count: int = 0) -> Invocation:
    """Run ``fn`` once; exceptions propagate (the caller settles the trigger accordingly)."""
    outs = {o.name: OutValue() for o in fn.outputs if o.name != "$return"}
    kwargs: dict[str, Any] = {fn.trigger_arg: trigger_value, **outs}
    if fn.context_arg:
        kwargs[fn.context_arg] = InvocationContext(fn.name, retry_count, max_retry_count)
    if fn.is_async:
        result = await fn.user_function(**kwargs)
    else:
        result = await asyncio.to_thread(fn.user_function, **kwargs)
    outputs = {name: out.value for name, out in outs.items() if out.value is not None}
    if any(o.name == "$return" for o in fn.outputs) and result is not None:
        outputs["$return"] = result
    return Invocation(result, outputs)
