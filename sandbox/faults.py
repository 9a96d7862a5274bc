"""Fault injection and throttling for the sandbox emulators (shared by Dataverse and Finance).

Fault spec grammar — semicolon-separated rules, each::

    <kind>[:<rate>][@<method>][/<path-glob>][=<param>]

``kind``
    ``latency``   add ``param`` milliseconds before the request is handled (default 100)
    ``error5xx``  answer with status ``param`` (500-599, default 503) instead of handling it
    ``reset``     abort the TCP connection without a response (no param)
    ``timeout``   hang ``param`` seconds (default 30), then abort the connection
``rate``
    probability 0..1 that the rule fires for a matching request (default 1)
``method``
    only requests with this HTTP method (case-insensitive)
``path-glob``
    ``fnmatch`` glob; matches the whole request path or any tail of it that starts after a ``/``,
    so ``msdyn_actuals*`` matches ``/api/data/v9.2/msdyn_actuals(…)``

Example: ``latency:0.2=50;error5xx:0.05@PATCH/msdyn_actuals*;reset:0.01``.
An invalid spec raises :class:`ValueError` naming the bad rule.

Decisions are deterministic: a plan draws from its own ``random.Random(seed)``, one draw per matching
rule, in rule order, so the same request sequence sees the same faults. Several latency rules add up;
of the terminal kinds (error5xx, reset, timeout) the first that fires wins.

Requests under ``/_emulator/`` (the control API) are never faulted or throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

FaultKind = Literal["latency", "error5xx", "reset", "timeout"]
KINDS: tuple[FaultKind, ...] = ("latency", "error5xx", "reset", "timeout")
TERMINAL_KINDS = frozenset({"error5xx", "reset", "timeout"})
EXEMPT_PREFIX = "/_emulator/"

_RULE = re.compile(
    r"^(?P<kind>[a-z0-9]+)"
    r"(?::(?P<rate>[0-9]*\.?[0-9]+))?"
    r"(?:@(?P<method>[A-Za-z]+))?"
    r"(?:/(?P<glob>[^=]+))?"
    r"(?:=(?P<param>[0-9]*\.?[0-9]+))?$"
)
_DEFAULT_PARAM: dict[str, float] = {"latency": 100.0, "error5xx": 503.0, "timeout": 30.0}


@dataclass(frozen=True)
class FaultRule:
    kind: FaultKind
    rate: float = 1.0
    method: str | None = None
    path_glob: str | None = None
    param: float | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        if self.path_glob is None:
            return True
        return fnmatchcase(path, self.path_glob) or fnmatchcase(path, "*/" + self.path_glob)

    def __str__(self) -> str:
        text = self.kind
        if self.rate != 1.0:
            text += f":{self.rate:g}"
        if self.method:
            text += f"@{self.method}"
        if self.path_glob:
            text += f"/{self.path_glob}"
        if self.param is not None and self.kind != "reset":
            text += f"={self.param:g}"
        return text


def _parse_rule(text: str) -> FaultRule:
    m = _RULE.match(text)
    if not m:
        raise ValueError(f"invalid fault rule {text!r}: expected <kind>[:<rate>][@<method>][/<glob>][=<param>]")
    kind = m["kind"]
    if kind not in KINDS:
        raise ValueError(f"invalid fault rule {text!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    rate = float(m["rate"]) if m["rate"] is not None else 1.0
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"invalid fault rule {text!r}: rate must be between 0 and 1")
    param = float(m["param"]) if m["param"] is not None else _DEFAULT_PARAM.get(kind)
    if kind == "reset" and m["param"] is not None:
        raise ValueError(f"invalid fault rule {text!r}: reset takes no parameter")
    if kind == "error5xx" and param is not None and not (500 <= param <= 599 and param == int(param)):
        raise ValueError(f"invalid fault rule {text!r}: error5xx status must be 500-599")
    return FaultRule(
        kind=kind,  # type: ignore[arg-type]
        rate=rate,
        method=m["method"].upper() if m["method"] else None,
        path_glob=m["glob"],
        param=param,
    )


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: delay it, then maybe replace it by a terminal fault."""

    latency_ms: float = 0.0
    terminal: FaultRule | None = None

    @property
    def is_clean(self) -> bool:
        return self.latency_ms == 0.0 and self.terminal is None


class FaultPlan:
    """A parsed fault spec with its own seeded random source."""

    def __init__(self, rules: tuple[FaultRule, ...] = (), seed: int = 0) -> None:
        self.rules = rules
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> FaultPlan:
        if spec is None or not spec.strip():
            return cls((), seed)
        parts = [p.strip() for p in spec.split(";")]
        return cls(tuple(_parse_rule(p) for p in parts if p), seed)

    @property
    def spec(self) -> str:
        return ";".join(str(r) for r in self.rules)

    def __str__(self) -> str:
        return self.spec

    def __bool__(self) -> bool:
        return bool(self.rules)

    def decide(self, method: str, path: str) -> FaultDecision:
        latency = 0.0
        terminal: FaultRule | None = None
        with self._lock:  # one draw per matching rule, in order, keeps sequences reproducible
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                fired = self._rng.random() < rule.rate
                if not fired:
                    continue
                if rule.kind == "latency":
                    latency += rule.param or 0.0
                elif terminal is None:
                    terminal = rule
        return FaultDecision(latency, terminal)


class Throttle:
    """Sliding-window request limit plus a concurrency limit, like the services' protection limits.

    ``acquire()`` admits a request (returns ``None``) or returns the Retry-After seconds the caller
    should wait; every admitted request must be ``release()``-d when done. Rejected requests don't
    count against the window, so a client that honours Retry-After gets through.
    """

    def __init__(
        self,
        requests_per_window: int | None = None,
        window_seconds: float = 300.0,
        concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_window is not None and requests_per_window < 1:
            raise ValueError("requests_per_window must be >= 1")
        if concurrent is not None and concurrent < 1:
            raise ValueError("concurrent must be >= 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self.concurrent = concurrent
        self._clock = clock
        self._admitted: deque[float] = deque()
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def acquire(self) -> float | None:
        now = self._clock()
        with self._lock:
            if self.requests_per_window is not None:
                horizon = now - self.window_seconds
                while self._admitted and self._admitted[0] <= horizon:
                    self._admitted.popleft()
                if len(self._admitted) >= self.requests_per_window:
                    wait = self._admitted[0] + self.window_seconds - now
                    return float(max(1, math.ceil(wait)))
            if self.concurrent is not None and self._active >= self.concurrent:
                return 1.0
            if self.requests_per_window is not None:
                self._admitted.append(now)
            self._active += 1
            return None

    def release(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)

    def describe(self) -> dict[str, Any]:
        return {
            "requests_per_window": self.requests_per_window,
            "window_seconds": self.window_seconds,
            "concurrent": self.concurrent,
        }


@dataclass
class FaultCounters:
    """What the middleware saw; an emulator's ``stats()`` reports it."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    def record_request(self, method: str, status: int) -> None:
        self.requests[(method, status)] += 1

    def snapshot(self) -> dict[str, Any]:
        by_method: dict[str, dict[str, int]] = {}
        for (method, status), n in sorted(self.requests.items()):
            by_method.setdefault(method, {})[str(status)] = n
        return {
            "requests": by_method,
            "requests_total": sum(self.requests.values()),
            "throttled": self.throttled,
            "faults": dict(self.faults),
        }

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.throttled = 0


def default_fault_response(status: int) -> Response:
    return JSONResponse({"error": {"code": "", "message": "Injected fault: service unavailable."}}, status)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _abort_connection(send: Send) -> None:
    """Drop the TCP connection with a RST and no response, as a network fault would.

    The ASGI spec has no "reset" event, so this reaches the server's transport through the bound
    ``send`` method (uvicorn's request cycle); without it, a half-sent response is the fallback.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # RST instead of FIN, like a real reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    cycle.disconnected = True  # tell uvicorn not to answer a request whose connection is gone
    await asyncio.sleep(0)


def fault_middleware(
    app: ASGIApp,
    get_plan: Callable[[], FaultPlan | None],
    get_throttle: Callable[[], Throttle | None],
    throttled_response: Callable[[float], Response],
    counters: FaultCounters,
    fault_response: Callable[[int], Response] = default_fault_response,
) -> ASGIApp:
    """Wrap ``app``: throttle, then inject faults, then count each request by method and status.

    ``throttled_response(retry_after_seconds)`` builds the service's own 429; ``fault_response(status)``
    builds the service's own body for an injected 5xx.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIX):
            await app(scope, receive, send)
            return
        method: str = scope["method"]
        started = [False]

        async def counting_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started[0] = True  # count before the client can see the response
                counters.record_request(method, message["status"])
            await send(message)

        throttle = get_throttle()
        if throttle is not None:
            retry_after = throttle.acquire()
            if retry_after is not None:
                counters.throttled += 1
                counters.record_request(method, 429)
                await throttled_response(retry_after)(scope, receive, send)
                return
        try:
            plan = get_plan()
            decision = plan.decide(method, scope["path"]) if plan else FaultDecision()
            if decision.latency_ms:
                counters.faults["latency"] += 1
                await asyncio.sleep(decision.latency_ms / 1000.0)
            rule = decision.terminal
            if rule is None:
                try:
                    await app(scope, receive, counting_send)
                except Exception:
                    if not started[0]:
                        counters.record_request(method, 500)
                    raise
                return
            counters.faults[rule.kind] += 1
            if rule.kind == "error5xx":
                status = int(rule.param or 503)
                counters.record_request(method, status)
                await fault_response(status)(scope, receive, send)
            elif rule.kind == "timeout":
                await asyncio.sleep(rule.param or 0.0)
                await _abort_connection(send)
            else:
                await _abort_connection(send)
        finally:
            if throttle is not None:
                throttle.release()

    return middleware
