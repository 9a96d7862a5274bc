"""GET /api/health: the catalog the app runs and whether its settings loaded."""

from __future__ import annotations

import json

import azure.functions as func

from shared.runtime import get_runtime

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health(req: func.HttpRequest) -> func.HttpResponse:
    runtime = get_runtime()
    body = {"status": "ok", "maps": len(runtime.catalog), "catalog": sorted(runtime.compiled)}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
