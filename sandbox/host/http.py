"""HTTP triggers served by Starlette: route templates, methods, auth levels with keys.

Routes live under the host's prefix (``api`` unless host.json says otherwise). Keys come in the
``x-functions-key`` header or the ``code`` query parameter: a FUNCTION function takes a function key or
the master key, an ADMIN one only the master key. A refused request gets 401 and a short JSON body
that says nothing about the keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import azure.functions as func
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.transport.local import LocalBroker

from .discovery import HostedFunction
from .invoke import invoke
from .keys import HostKeys
from .outputs import route_outputs
from .stats import OUTPUT_MESSAGES, HostStats

log = logging.getLogger("dualsync.host")

_PARAM = re.compile(r"\{(\*?)([A-Za-z_]\w*)(\?)?(?::([^}]+))?\}")
# Functions route constraints Starlette has a converter for; the others match any segment
_CONVERTERS = {"int": "int", "long": "int", "float": "float", "double": "float", "decimal": "float"}
UNAUTHORIZED = {"error": "Unauthorized", "status": 401}


def starlette_paths(prefix: str, route: str) -> list[str]:
    """Starlette path(s) for a Functions route template (an optional last parameter gives two paths)."""
    segments = [s for s in route.strip("/").split("/") if s]
    paths: list[list[str]] = [[]]
    for i, segment in enumerate(segments):
        optional = False

        def convert(m: re.Match[str]) -> str:
            nonlocal optional
            star, name, opt, constraint = m.groups()
            optional = optional or bool(opt)
            if star:
                return "{" + name + ":path}"
            kind = _CONVERTERS.get((constraint or "").split("(")[0].lower())
            return "{" + name + (f":{kind}" if kind else "") + "}"

        converted = _PARAM.sub(convert, segment)
        if optional and i == len(segments) - 1:
            paths = paths + [[*p, converted] for p in paths]
        else:
            paths = [[*p, converted] for p in paths]
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return [base + "/" + "/".join(p) if p else base or "/" for p in paths]


def _headers(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def to_response(result: Any) -> Response:
    """The worker's conversion of a function's return value to an HTTP response."""
    if result is None:
        return Response(status_code=204)
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers):
            mimetype = result.mimetype or "text/plain"
            headers["content-type"] = f"{mimetype}; charset={result.charset or 'utf-8'}"
        return Response(result.get_body(), status_code=result.status_code, headers=headers)
    if isinstance(result, str | bytes):
        return Response(result, status_code=200, media_type="text/plain")
    raise TypeError(f"an HTTP function returned a {type(result).__name__}, not an HttpResponse")


class HttpFront:
    """The Starlette app for the HTTP functions; counts requests in flight for idle detection."""

    def __init__(self, functions: Sequence[HostedFunction], keys: HostKeys, stats: HostStats,
                 broker: LocalBroker, *, route_prefix: str = "api",
                 on_output: Callable[[], None] | None = None):
        self.keys = keys
        self.stats = stats
        self.broker = broker
        self.on_output = on_output
        self.in_flight = 0
        routes = []
        for fn in functions:
            for path in starlette_paths(route_prefix, fn.route or fn.name):
                routes.append(Route(path, self._endpoint(fn), methods=list(fn.methods), name=fn.name))
        self.app = Starlette(routes=routes)

    def _endpoint(self, fn: HostedFunction) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            self.in_flight += 1
            try:
                response = await self._serve(fn, request)
            finally:
                self.in_flight -= 1
            self.stats.http_status(response.status_code, fn.name)
            return response

        return endpoint

    async def _serve(self, fn: HostedFunction, request: Request) -> Response:
        presented = request.headers.get("x-functions-key") or request.query_params.get("code")
        if not self.keys.allows(fn.auth_level, presented):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        req = func.HttpRequest(
            method=request.method, url=str(request.url), headers=_headers(request),
            params=dict(request.query_params), route_params={k: str(v) for k, v in request.path_params.items()},
            body=await request.body(),
        )
        try:
            invocation = await invoke(fn, req)
            sent = await route_outputs(fn, invocation.outputs, self.broker)
            if sent:
                self.stats.add(OUTPUT_MESSAGES, fn.name, sent)
            if self.on_output:  # outputs, or messages the function sent through its own client
                self.on_output()
            return to_response(invocation.result)
        except Exception as exc:
            log.exception("function %s failed: %s", fn.name, type(exc).__name__)
            self.stats.failure(fn.name, exc)
            return JSONResponse({"error": "Internal Server Error", "status": 500}, status_code=500)
