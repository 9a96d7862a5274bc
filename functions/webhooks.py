"""Inbound change notifications over HTTP: Dataverse webhooks and Finance business events.

Function-level auth (the host's key), plus the optional shared secret the engine checks. A rejected
request publishes nothing and gets the status its rejection names; an accepted one answers 202 at once
(the sync runs from the topic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.events.control import ControlNumberContention, ControlNumberTracker
from shared.events.errors import Rejection
from shared.events.intake import accept_dataverse, accept_finance
from shared.events.publish import deliver, publish_intake
from shared.events.result import IntakeResult
from shared.runtime import get_runtime
from shared.sync.factory import get_service

bp = func.Blueprint()


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


async def _intake(req: func.HttpRequest, accept: Callable[..., IntakeResult]) -> func.HttpResponse:
    runtime = get_runtime()
    settings = runtime.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    try:
        result = accept(req.get_body(), dict(req.headers), runtime.catalog, runtime.compiled,
                        max_body_bytes=settings.max_body_bytes, expected_secret=secret)
    except Rejection as rejection:
        return _json(rejection.status, rejection.as_dict())
    service = await get_service()
    sent = await publish_intake(result, service.transport, settings.change_topic)
    return _json(202, {"accepted": sent, "ignored": result.ignored_reason})


@bp.function_name("dataverse_webhook")
@bp.route(route="dataverse/webhook", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def dataverse_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return await _intake(req, accept_dataverse)


@bp.function_name("finance_events")
@bp.route(route="finance/events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def finance_events(req: func.HttpRequest) -> func.HttpResponse:
    # Like _intake, plus ControlNumber tracking: a stale or duplicate event is answered 202, ignored.
    runtime = get_runtime()
    settings = runtime.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    try:
        result = accept_finance(req.get_body(), dict(req.headers), runtime.catalog, runtime.compiled,
                                max_body_bytes=settings.max_body_bytes, expected_secret=secret)
    except Rejection as rejection:
        return _json(rejection.status, rejection.as_dict())
    service = await get_service()
    try:
        delivered = await deliver(result, service.transport, settings.change_topic,
                                  ControlNumberTracker(service.state))
    except ControlNumberContention as busy:  # Finance retries the event (3 times, 1 s apart)
        return _json(503, {"error": "busy", "status": 503, "message": str(busy)})
    return _json(202, {"accepted": delivered.sent, "ignored": delivered.ignored_reason})
