"""The Starlette app: OData under ``/data/``, the control API under ``/_emulator/``, bearer auth on
both, fault injection and throttling around everything but ``/_emulator/``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import fault_middleware
from sandbox.finance.batch import run_batch
from sandbox.finance.csdl import metadata_xml
from sandbox.finance.emulator import FinanceEmulator
from sandbox.finance.errors import FinanceError, NoResource, Unauthorized, fault_response, throttled_response
from sandbox.finance.service import ODataRequest

log = logging.getLogger(__name__)
SERVICE_ROOT = "/data"


class _FaultsAndThrottle:
    """Starlette middleware adapter for :func:`sandbox.faults.fault_middleware`."""

    def __init__(self, app: Any, emulator: FinanceEmulator) -> None:
        self._inner = fault_middleware(app, lambda: emulator.plan, lambda: emulator.throttle,
                                       throttled_response, emulator.counters, fault_response)

        self._emulator = emulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._emulator.attach_loop(asyncio.get_running_loop())  # flows emit events and run on schedule here
        await self._inner(scope, receive, send)


def _error(exc: FinanceError) -> Response:
    return exc.response()


def build_app(emulator: FinanceEmulator) -> Starlette:
    svc = emulator.service
    metadata: list[bytes] = []

    def denied(request: Request) -> Response | None:
        if emulator.token is None:
            return None
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip() == emulator.token:
            return None
        return _error(Unauthorized("Authorization has been denied for this request."))

    def root_url(request: Request) -> str:
        if not svc.root_url:
            svc.root_url = str(request.base_url).rstrip("/") + SERVICE_ROOT
        return svc.root_url

    async def data(request: Request) -> Response:
        if (deny := denied(request)) is not None:
            return deny
        root_url(request)
        raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        raw = raw.split("?", 1)[0]
        path = raw[len(SERVICE_ROOT):].lstrip("/") if raw.startswith(SERVICE_ROOT) else raw
        try:
            body = await request.body()
            req = ODataRequest(request.method, path, dict(request.query_params),
                               {k.lower(): v for k, v in request.headers.items()}, body)
            resp = svc.handle(req)
        except Exception:  # a bug, not the client's fault: log it and answer in the service's shape
            log.exception("finance emulator failed on %s %s", request.method, path)
            return _error(FinanceError("Internal error in the emulator.", 500))
        emulator.events.emit(resp.changes)
        return Response(resp.body, resp.status, headers=resp.headers)

    async def service_document(request: Request) -> Response:
        if (deny := denied(request)) is not None:
            return deny
        base = root_url(request)
        return JSONResponse({"@odata.context": f"{base}/$metadata",
                             "value": [{"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set}
                                       for e in emulator.schema.entities.values()]})

    async def metadata_endpoint(request: Request) -> Response:
        if (deny := denied(request)) is not None:
            return deny
        if not metadata:
            metadata.append(metadata_xml(emulator.schema))
        return Response(metadata[0], 200, media_type="application/xml", headers={"OData-Version": "4.0"})

    async def batch(request: Request) -> Response:
        if (deny := denied(request)) is not None:
            return deny
        root_url(request)
        body = await request.body()
        status, headers, payload, changes = run_batch(svc, request.headers.get("content-type", ""), body)
        emulator.events.emit(changes)
        return Response(payload, status, headers=headers)

    async def not_found(request: Request) -> Response:
        return _error(NoResource(f"No HTTP resource was found that matches the request URI '{request.url}'."))

    # --- control API ------------------------------------------------------------------------------

    async def admin_json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise FinanceError("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise FinanceError("A JSON object was expected.")
        return data

    def admin(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if (deny := denied(request)) is not None:
                return deny
            try:
                return await handler(request)
            except FinanceError as exc:
                return _error(exc)
            except (ValueError, TypeError) as exc:
                return _error(FinanceError(str(exc)))
        return endpoint

    async def get_faults(request: Request) -> Response:
        plan = emulator.plan
        return JSONResponse({"spec": plan.spec if plan else None, "seed": plan.seed if plan else emulator.seed})

    async def put_faults(request: Request) -> Response:
        data = await admin_json(request)
        seed = data.get("seed")
        emulator.set_faults(data.get("spec"), int(seed) if seed is not None else None)
        return await get_faults(request)

    async def put_throttle(request: Request) -> Response:
        data = await admin_json(request)
        rpw = data.get("requests_per_window")
        conc = data.get("concurrent")
        emulator.set_throttle(int(rpw) if rpw is not None else None, float(data.get("window_seconds", 300.0)),
                              int(conc) if conc is not None else None)
        return JSONResponse(emulator.throttle.describe() if emulator.throttle else None)

    async def post_reset(request: Request) -> Response:
        emulator.reset()
        return Response(status_code=204)

    async def get_stats(request: Request) -> Response:
        return JSONResponse(emulator.stats())

    async def list_endpoints(request: Request) -> Response:
        return JSONResponse({"value": emulator.endpoints()})

    async def add_endpoint(request: Request) -> Response:
        data = await admin_json(request)
        url = data.get("url")
        if not isinstance(url, str):
            raise FinanceError("'url' is required.")
        eid = emulator.register_endpoint(url, legal_entities=data.get("legal_entities"),
                                         business_event_ids=data.get("business_event_ids"))
        return JSONResponse(emulator.events.endpoints[eid].describe(), 201)

    async def delete_endpoint(request: Request) -> Response:
        if not emulator.unregister_endpoint(request.path_params["eid"]):
            return JSONResponse({"error": {"code": "", "message": "No such endpoint."}}, 404)
        return Response(status_code=204)

    async def run_flows(request: Request) -> Response:
        data = await admin_json(request)
        return JSONResponse({"value": emulator.run_flow(str(data.get("flow", "all")))})

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "MERGE"]
    routes = [
        Route("/data/$metadata", metadata_endpoint, methods=["GET"]),
        Route("/data/$batch", batch, methods=["POST"]),
        Route("/data", service_document, methods=["GET"]),
        Route("/data/", service_document, methods=["GET"]),
        Route("/data/{path:path}", data, methods=methods),
        Route("/_emulator/faults", admin(get_faults), methods=["GET"]),
        Route("/_emulator/faults", admin(put_faults), methods=["PUT"]),
        Route("/_emulator/throttle", admin(put_throttle), methods=["PUT"]),
        Route("/_emulator/reset", admin(post_reset), methods=["POST"]),
        Route("/_emulator/stats", admin(get_stats), methods=["GET"]),
        Route("/_emulator/endpoints", admin(list_endpoints), methods=["GET"]),
        Route("/_emulator/endpoints", admin(add_endpoint), methods=["POST"]),
        Route("/_emulator/endpoints/{eid}", admin(delete_endpoint), methods=["DELETE"]),
        Route("/_emulator/flows/run", admin(run_flows), methods=["POST"]),
        Route("/{path:path}", not_found, methods=methods),
    ]
    async def unmatched(request: Request, exc: Exception) -> Response:
        return await not_found(request)  # paths Starlette's router cannot match (e.g. a newline in them)

    app = Starlette(routes=routes, middleware=[Middleware(_FaultsAndThrottle, emulator=emulator)],
                    exception_handlers={404: unmatched})
    app.state.emulator = emulator
    return app
