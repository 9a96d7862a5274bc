"""The Starlette app and the in-process control object (``app.state.emulator``)."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.dataverse import errors
from sandbox.dataverse.batch import run_batch
from sandbox.dataverse.errors import DataverseError
from sandbox.dataverse.flows import DataverseFlows, FlowAwareService
from sandbox.dataverse.metadata import metadata_xml
from sandbox.dataverse.notify import Notifier, Organization, Publish
from sandbox.dataverse.schema import Schema, Table, load_schema
from sandbox.dataverse.service import SERVICE_ROOT, ApiRequest, ApiResponse, error_response
from sandbox.dataverse.store import Store, UniqueViolation
from sandbox.dataverse.values import now_text, to_guid, to_json, to_storage
from sandbox.faults import FaultCounters, FaultPlan, Throttle, fault_middleware


class DataverseEmulator:
    """Control object: data, faults, throttling, notification endpoints and statistics."""

    def __init__(self, *, db: str | Path | None = None, faults: str | None = None, token: str | None = "dev-token",
                 schema: Schema | None = None, seed: int = 0, delta_token_max_changes: int | None = None,
                 organization: Organization | None = None) -> None:
        self.schema = schema or load_schema()
        self.store = Store(self.schema, db)
        self.notifier = Notifier(self.schema, organization)
        self.service = FlowAwareService(self.schema, self.store, on_commit=self.notifier.submit,
                                        delta_token_max_changes=delta_token_max_changes)
        self.flows = DataverseFlows(self.service)
        self.token = token
        self.seed = seed
        self.plan: FaultPlan | None = FaultPlan.parse(faults, seed) if faults else None
        self.throttle: Throttle | None = None
        self.counters = FaultCounters()
        self.metadata = metadata_xml(self.schema)

    # --- data ------------------------------------------------------------------------------------
    def _table(self, entity_set: str) -> Table:
        table = self.schema.table_for_set(entity_set) or self.schema.tables.get(entity_set)
        if table is None:
            raise KeyError(f"unknown entity set {entity_set!r}")
        return table

    def reset(self) -> None:
        self.store.reset()
        self.service.bulk_unsupported.clear()
        self.notifier.clear()
        self.counters.reset()
        self.notifier.counters.clear()

    def load_rows(self, entity_set: str, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Bulk insert without HTTP (demo data, benchmarks). Values as the Web API reads them
        (``_x_value`` for lookups, which are not checked for existence); assigns ids, versions and
        timestamps; enforces types and alternate keys (raises the emulator's DuplicateKey). No notifications."""
        table = self._table(entity_set)
        prepared: list[dict[str, Any]] = []
        ids: list[str] = []
        now = now_text()
        with self.store.lock, self.store.transaction():
            for raw in rows:
                row: dict[str, Any] = {}
                for name, value in raw.items():
                    col = table.by_value_name.get(name) or table.columns.get(name)
                    if col is None:
                        raise errors.unknown_property(name, table.type_name)
                    row[col.name] = to_guid(value) if col.is_lookup and value is not None else \
                        to_storage(table, col, value)
                row[table.primary_id] = row.get(table.primary_id) or str(uuid.uuid4())
                row.setdefault("statecode", table.columns["statecode"].options[0])
                row.setdefault("statuscode", table.columns["statuscode"].options[0])
                row["createdon"] = row["modifiedon"] = now
                row["versionnumber"] = self.store.next_version()
                prepared.append(row)
                ids.append(row[table.primary_id])
            try:
                self.store.insert_many(table, prepared)
            except UniqueViolation as exc:
                raise self.service._duplicate(table, exc, {}) from None
        return ids

    def count(self, entity_set: str) -> int:
        with self.store.lock:
            return self.store.count(self._table(entity_set))

    def rows(self, entity_set: str) -> Iterator[dict[str, Any]]:
        table = self._table(entity_set)
        with self.store.lock:
            stored = self.store.select(table, order='"versionnumber"')
        for r in stored:
            yield {c.value_name: to_json(c, r.get(c.name)) for c in table.columns.values()}

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far becomes expired (the client must re-read everything)."""
        self.store.expire_tokens()

    # --- faults and throttling -------------------------------------------------------------------
    def set_faults(self, spec: str | None) -> None:
        self.plan = FaultPlan.parse(spec, self.seed) if spec else None

    def set_throttle(self, requests_per_window: int | None, window_seconds: float = 300.0,
                     concurrent: int | None = None) -> None:
        if requests_per_window is None and concurrent is None:
            self.throttle = None
        else:
            self.throttle = Throttle(requests_per_window, window_seconds, concurrent)

    # --- notifications ---------------------------------------------------------------------------
    def register_webhook(self, url: str, *, tables: Iterable[str] | None = None,
                         messages: Iterable[str] | None = None, auth: str = "none",
                         auth_values: dict[str, str] | None = None) -> str:
        return self.notifier.register_webhook(url, tables=tables, messages=messages, auth=auth,
                                              auth_values=auth_values)

    def register_service_bus(self, publish: Publish, *, tables: Iterable[str] | None = None,
                             messages: Iterable[str] | None = None) -> str:
        return self.notifier.register_service_bus(publish, tables=tables, messages=messages)

    def unregister(self, endpoint_id: str) -> bool:
        return self.notifier.unregister(endpoint_id)

    def endpoints(self) -> list[dict[str, Any]]:
        return [e.describe() for e in self.notifier.endpoints.values()]

    def run_flow(self, name: str = "all") -> list[dict[str, Any]]:
        """Run a Project Operations flow now (flows.py); its writes notify like any other write."""
        return [r.describe() for r in self.flows.run(name)]

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "notifications": self.notifier.stats(),
                "faults_spec": self.plan.spec if self.plan else None,
                "throttle": self.throttle.describe() if self.throttle else None}

    # --- HTTP helpers ----------------------------------------------------------------------------
    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def throttled_response(self, retry_after: float) -> Response:
        t = self.throttle
        if t is not None and t.concurrent is not None and t.active >= t.concurrent:
            code, msg = "0x80072326", f"Number of concurrent requests exceeded the limit of {t.concurrent}."
        else:
            limit = t.requests_per_window if t else 6000
            window = int(t.window_seconds) if t else 300
            code, msg = "0x80072322", (f"Number of requests exceeded the limit of {limit} over time window "
                                       f"of {window} seconds.")
        return JSONResponse({"error": {"code": code, "message": msg}}, 429,
                            headers={"Retry-After": str(int(retry_after))})

    def fault_response(self, status: int) -> Response:
        return JSONResponse({"error": {"code": "0x80040216", "message": "An unexpected error occurred."}}, status)


def _to_starlette(resp: ApiResponse) -> Response:
    return Response(resp.body, resp.status, headers=resp.headers)


def _unauthorized() -> Response:
    exc = errors.Unauthorized("The request is not authorized: a valid 'Authorization: Bearer' token is required.")
    return Response(json.dumps(exc.body()), 401, media_type="application/json",
                    headers={"WWW-Authenticate": "Bearer authorization_uri="
                             "https://login.microsoftonline.com/common/oauth2/authorize"})


def create_app(*, db: str | Path | None = None, faults: str | None = None, token: str | None = "dev-token",
               **options: Any) -> Starlette:
    """The emulator as an ASGI app; ``app.state.emulator`` is its :class:`DataverseEmulator`.

    Options: ``seed`` (fault plan), ``delta_token_max_changes`` (delta tokens older than that many
    changes are expired), ``organization`` (:class:`Organization` used in notifications), ``schema``.
    """
    emu = DataverseEmulator(db=db, faults=faults, token=token, **options)

    async def api(request: Request) -> Response:
        if not emu.authorized(request):
            return _unauthorized()
        path = request.path_params.get("path", "")
        base = f"{request.url.scheme}://{request.url.netloc}"
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        if path == "$metadata":
            if request.method != "GET":
                return _to_starlette(error_response(errors.MethodNotAllowed(
                    f"The requested resource does not support http method '{request.method}'.")))
            return Response(emu.metadata, 200, media_type="application/xml", headers={"OData-Version": "4.0"})
        if path == "$batch":
            if request.method != "POST":
                return _to_starlette(error_response(errors.MethodNotAllowed(
                    f"The requested resource does not support http method '{request.method}'.")))
            return _to_starlette(run_batch(emu.service, body, headers.get("content-type", ""), headers, query,
                                           base))
        return _to_starlette(emu.service.handle(ApiRequest(request.method, path, query, headers, body), base))

    async def admin(request: Request) -> Response:
        if not emu.authorized(request):
            return _unauthorized()
        try:
            return await _admin(emu, request)
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": {"code": "", "message": str(exc)}}, 400)
        except DataverseError as exc:
            return _to_starlette(error_response(exc))

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route(SERVICE_ROOT, api, methods=methods),
        Route(SERVICE_ROOT + "/{path:path}", api, methods=methods),
        Route("/_emulator/{op:path}", admin, methods=methods),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emu
    app.add_middleware(_FaultLayer, emulator=emu)
    return app


class _FaultLayer:
    """Adapter so Starlette's middleware stack wraps the app with ``sandbox.faults``."""

    def __init__(self, app: Any, emulator: DataverseEmulator) -> None:
        self.inner = fault_middleware(app, lambda: emulator.plan, lambda: emulator.throttle,
                                      emulator.throttled_response, emulator.counters,
                                      fault_response=emulator.fault_response)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.inner(scope, receive, send)


async def _admin(emu: DataverseEmulator, request: Request) -> Response:
    op = request.path_params["op"].strip("/")
    m = request.method
    data: dict[str, Any] = {}
    if m in ("POST", "PUT", "PATCH"):
        raw = await request.body()
        data = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
    if op == "faults" and m == "GET":
        return JSONResponse({"spec": emu.plan.spec if emu.plan else None})
    if op == "faults" and m == "PUT":
        emu.set_faults(data.get("spec"))
        return JSONResponse({"spec": emu.plan.spec if emu.plan else None})
    if op == "throttle" and m == "PUT":
        emu.set_throttle(data.get("requests_per_window"), float(data.get("window_seconds", 300.0)),
                         data.get("concurrent"))
        return JSONResponse({"throttle": emu.throttle.describe() if emu.throttle else None})
    if op == "reset" and m == "POST":
        emu.reset()
        return Response(status_code=204)
    if op == "stats" and m == "GET":
        return JSONResponse(emu.stats())
    if op == "expire-delta-tokens" and m == "POST":
        emu.expire_delta_tokens()
        return Response(status_code=204)
    if op == "flows/run" and m == "POST":
        return JSONResponse({"value": emu.run_flow(str(data.get("flow", "all")))})
    if op == "webhooks" and m == "GET":
        return JSONResponse({"value": emu.endpoints()})
    if op == "webhooks" and m == "POST":
        eid = emu.register_webhook(str(data["url"]), tables=data.get("tables"), messages=data.get("messages"),
                                   auth=str(data.get("auth", "none")), auth_values=data.get("auth_values"))
        return JSONResponse({"id": eid}, 201)
    if op.startswith("webhooks/") and m == "DELETE":
        if emu.unregister(op.split("/", 1)[1]):
            return Response(status_code=204)
        return JSONResponse({"error": {"code": "", "message": "No such endpoint."}}, 404)
    return JSONResponse({"error": {"code": "", "message": f"No admin operation {m} /_emulator/{op}."}}, 404)
