"""Operator HTTP API (admin auth level): status, pause, resume, errors, replay, dismiss, initial sync.

Routes live under ``ops/`` because the Functions host reserves ``admin/...`` for its own API (a
function route there conflicts with the host's built-in routes). Admin level means only the host's master key
(``x-functions-key`` header or ``code`` query) is accepted, never a function key. The logic is in
shared/ops_http.py; each function passes its route values, query and body along and answers JSON.
"""

from __future__ import annotations

import azure.functions as func

from shared import ops_http
from shared.ops_http import Reply, get_operations

bp = func.Blueprint()

ADMIN = func.AuthLevel.ADMIN


def _respond(reply: Reply) -> func.HttpResponse:
    return func.HttpResponse(reply.text(), status_code=reply.status, mimetype="application/json")


@bp.function_name("ops_status")
@bp.route(route="ops/status", methods=["GET"], auth_level=ADMIN)
async def ops_status(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.status(await get_operations()))


@bp.function_name("ops_pause")
@bp.route(route="ops/maps/{map}/pause", methods=["POST"], auth_level=ADMIN)
async def ops_pause(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.pause(await get_operations(), req.route_params["map"], req.get_body()))


@bp.function_name("ops_resume")
@bp.route(route="ops/maps/{map}/resume", methods=["POST"], auth_level=ADMIN)
async def ops_resume(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.resume(await get_operations(), req.route_params["map"]))


@bp.function_name("ops_errors")
@bp.route(route="ops/errors", methods=["GET"], auth_level=ADMIN)
async def ops_errors(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.list_errors(await get_operations(), dict(req.params)))


@bp.function_name("ops_error")
@bp.route(route="ops/errors/{id}", methods=["GET"], auth_level=ADMIN)
async def ops_error(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.show_error(await get_operations(), req.route_params["id"]))


@bp.function_name("ops_replay_error")
@bp.route(route="ops/errors/{id}/replay", methods=["POST"], auth_level=ADMIN)
async def ops_replay_error(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.replay_error(await get_operations(), req.route_params["id"]))


@bp.function_name("ops_replay_all")
@bp.route(route="ops/errors/replay", methods=["POST"], auth_level=ADMIN)
async def ops_replay_all(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.replay_all(await get_operations()))


@bp.function_name("ops_dismiss")
@bp.route(route="ops/errors/{id}/dismiss", methods=["POST"], auth_level=ADMIN)
async def ops_dismiss(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.dismiss(await get_operations(), req.route_params["id"]))


@bp.function_name("ops_replay_map")
@bp.route(route="ops/maps/{map}/replay", methods=["POST"], auth_level=ADMIN)
async def ops_replay_map(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(await ops_http.replay_map(await get_operations(), req.route_params["map"]))


@bp.function_name("ops_initial_sync")
@bp.route(route="ops/maps/{map}/initial-sync", methods=["POST"], auth_level=ADMIN)
async def ops_initial_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Distributed initial sync of one map: work items on the work queue, processed by the app."""
    return _respond(await ops_http.initial_sync(await get_operations(), req.route_params["map"]))
