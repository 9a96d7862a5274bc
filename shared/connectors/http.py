"""One request path for both services: pooled client, token, limiter, retry, typed errors, logs.

Logs carry method, path (never the query string), status, duration and attempt — never headers,
tokens, secrets or row contents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from shared.connectors import jsoncodec
from shared.connectors.auth import TokenProvider, token_provider
from shared.connectors.concurrency import AdaptiveLimiter
from shared.connectors.errors import ConnectorError, ForeignLink, Service, Throttled, Transient, classify
from shared.connectors.retry import RetryPolicy
from shared.settings import Settings

log = logging.getLogger("dualsync.connectors")


class _DropQueryFromHttpxLogs(logging.Filter):
    """httpx logs every request's full URL at INFO; the query may hold keys (``code=``) or row
    values in ``$filter``. Keep its records, without the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                str(a).split("?", 1)[0] if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


if not any(isinstance(f, _DropQueryFromHttpxLogs) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_DropQueryFromHttpxLogs())


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


@dataclass
class _Pooled:
    client: httpx.AsyncClient
    limiter: AdaptiveLimiter
    loop: asyncio.AbstractEventLoop


class ClientRegistry:
    """ONE pooled ``httpx.AsyncClient`` and ONE limiter per service base URL (and event loop).

    Keyed by loop too because an AsyncClient's connections belong to the loop that opened them;
    a Functions worker has one loop, tests have one per test.
    """

    def __init__(self) -> None:
        self._pool: dict[tuple[str, int], _Pooled] = {}

    def get(self, base_url: str, *, timeout: float, max_concurrency: int) -> tuple[httpx.AsyncClient, AdaptiveLimiter]:
        loop = asyncio.get_running_loop()
        # one client per loop: a process may run two loops (the sandbox's dev host beside its driver),
        # and a shared key would make them replace each other's client on every call
        key = (base_url.rstrip("/"), id(loop))
        pooled = self._pool.get(key)
        if pooled is None or pooled.loop is not loop or pooled.loop.is_closed() or pooled.client.is_closed:
            for stale in [k for k, p in self._pool.items() if p.loop.is_closed()]:
                del self._pool[stale]
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                limits=httpx.Limits(
                    max_connections=max_concurrency * 2,
                    max_keepalive_connections=max_concurrency * 2,
                    keepalive_expiry=60.0,
                ),
                http1=True,
                http2=False,
                follow_redirects=False,
            )
            pooled = _Pooled(client, AdaptiveLimiter(max_concurrency), loop)
            self._pool[key] = pooled
        return pooled.client, pooled.limiter

    async def aclose(self) -> None:
        pools = list(self._pool.values())
        self._pool.clear()
        for pooled in pools:
            if pooled.loop is asyncio.get_running_loop():
                await pooled.client.aclose()


registry = ClientRegistry()

ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


class ServiceClient:
    """Sends requests to one service root with auth, adaptive concurrency, retries and typed errors."""

    def __init__(
        self,
        *,
        service: Service,
        service_root: str,
        tokens: TokenProvider,
        retry: RetryPolicy,
        client: httpx.AsyncClient | None = None,
        limiter: AdaptiveLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_concurrency: int = 16,
    ) -> None:
        """Without ``client``/``limiter``, the process-wide pooled ones for this origin are used
        (looked up at request time, so connectors can be built outside an event loop)."""
        self.service = service
        self.service_root = service_root if service_root.endswith("/") else service_root + "/"
        self.origin = origin(self.service_root)
        self.tokens = tokens
        self.retry = retry
        self._client = client
        self._limiter = limiter
        self._pool_args = {"timeout": timeout, "max_concurrency": max_concurrency}
        self.headers = {**ODATA_HEADERS, **(headers or {})}

    @classmethod
    def from_settings(cls, settings: Settings, service: Service, environment_url: object, api_path: str, *,
                      tokens: TokenProvider | None = None, headers: Mapping[str, str] | None = None) -> ServiceClient:
        """The process's client for one environment: token scope, retry budget, timeout and concurrency
        ceiling from settings; pooled connections shared by every connector of that environment."""
        root = str(environment_url).rstrip("/")
        return cls(service=service, service_root=f"{root}/{api_path}", tokens=tokens or token_provider(settings, root),
                   retry=RetryPolicy(settings.retry_budget_seconds), timeout=settings.http_timeout_seconds,
                   max_concurrency=settings.max_concurrency, headers=headers)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        return registry.get(self._pool_key, **self._pool_args)[0]  # type: ignore[arg-type]

    @property
    def limiter(self) -> AdaptiveLimiter:
        if self._limiter is not None:
            return self._limiter
        return registry.get(self._pool_key, **self._pool_args)[1]  # type: ignore[arg-type]

    @property
    def _pool_key(self) -> str:
        scheme, host, port = self.origin
        return f"{scheme}://{host}" + (f":{port}" if port else "")

    def url(self, relative_or_absolute: str) -> str:
        """Resolve against the service root; absolute links must stay on the environment's origin."""
        url = urljoin(self.service_root, relative_or_absolute)
        if origin(url) != self.origin:
            path = urlsplit(url).path
            host = urlsplit(url).netloc.rpartition("@")[2]  # never log userinfo
            log.warning(
                "%s: refused link to %s%s outside the environment", self.service.value, host, path,
                extra={"service": self.service.value, "link_host": host, "path": path},
            )
            raise ForeignLink(
                service=self.service, method="GET", path=f"{urlsplit(url).hostname}{path}",
                message="link points outside the configured environment",
            )
        return url

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send (with retries unless ``retry`` is False, for callers that run their own retry
        loop); return the successful response or raise a :class:`ConnectorError`."""
        full = self.url(url)
        body = content if content is not None else (
            jsoncodec.dumps(json_body) if json_body is not None else None
        )
        hdrs = {**self.headers, **(headers or {})}
        if json_body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        if not retry:
            return await self._attempt(method, full, body, hdrs, 1)
        return await self.retry.call(lambda attempt: self._attempt(method, full, body, hdrs, attempt))

    async def _attempt(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], attempt: int
    ) -> httpx.Response:
        path = urlsplit(url).path
        async with self.limiter.slot() as slot:
            token = await self.tokens.token()
            response = await self._send(method, url, path, body, headers, token, attempt)
            if response.status_code == 401:
                # One refresh: the token may have expired or been revoked since we cached it.
                token = await self.tokens.token(rejected=token)
                response = await self._send(method, url, path, body, headers, token, attempt)
            if response.status_code < 400:
                await self.limiter.on_success(slot)
                return response
            error = classify(
                service=self.service, method=method, path=path, status=response.status_code,
                body=_json_or_none(response), headers=response.headers,
            )
            if isinstance(error, Throttled):
                await self.limiter.on_throttle(slot, error.retry_after, error.limit)
            raise error

    async def _send(
        self, method: str, url: str, path: str, body: bytes | None, headers: dict[str, str], token: str, attempt: int
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self.client.request(
                method, url, content=body, headers={**headers, "Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:  # timeouts, refused/reset connections, protocol errors
            _log_call(self.service, method, path, None, started, attempt, type(exc).__name__)
            raise Transient(
                service=self.service, method=method, path=path, message=type(exc).__name__
            ) from None
        _log_call(self.service, method, path, response.status_code, started, attempt, None)
        return response


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return jsoncodec.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _log_call(
    service: Service, method: str, path: str, status: int | None, started: float, attempt: int, failure: str | None
) -> None:
    ms = round((time.perf_counter() - started) * 1000, 1)
    level = logging.DEBUG if status is not None and status < 400 else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s %s -> %s in %.1f ms (attempt %d)", service.value, method, path,
            status if status is not None else failure, ms, attempt,
            extra={"service": service.value, "method": method, "path": path, "status": status,
                   "duration_ms": ms, "attempt": attempt},
        )


__all__ = ["ClientRegistry", "ConnectorError", "ServiceClient", "origin", "registry"]
