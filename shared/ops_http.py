"""The admin HTTP API's logic, free of ``azure.functions``: parse, act, answer with a status and JSON.

functions/admin.py turns a :class:`Reply` into an ``HttpResponse`` and nothing more. Statuses: 200 done;
400 a body or query that cannot be read (named); 404 an unknown map or error id (named); 409 an error
that cannot be replayed (not open, or no readable notification); 503 the state store, the broker or a
connected system (Dataverse, Finance: initial-sync planning reads legal entities) failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.connectors.errors import ConnectorError
from shared.operations import (
    MAX_LIST_LIMIT,
    InvalidArgument,
    NotReplayable,
    Operations,
    UnknownMap,
    backlog_probe,
)
from shared.process import BuiltOnce
from shared.state.errors import NotFoundError, StateStoreError
from shared.transport.errors import TransportError

log = logging.getLogger("dualsync.admin")

MAX_BODY_BYTES = 16_384  # operator requests are tiny; anything larger is a mistake


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any

    def text(self) -> str:
        return json.dumps(self.body)


class BadRequest(ValueError):
    pass


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=1000)


def _problem(status: int, code: str, message: str, **extra: Any) -> Reply:
    return Reply(status, {"status": status, "error": code, "message": message, **extra})


async def answer(action: Awaitable[Any]) -> Reply:
    """Run one operator action; its typed failures become the statuses documented above."""
    try:
        return Reply(200, await action)
    except UnknownMap as exc:
        return _problem(404, "unknown-map", str(exc), map=exc.name)
    except NotFoundError as exc:
        return _problem(404, "unknown-error", str(exc))
    except NotReplayable as exc:
        return _problem(409, "not-replayable", str(exc))
    except (InvalidArgument, BadRequest) as exc:
        return _problem(400, "bad-request", str(exc))
    except (StateStoreError, TransportError, ConnectorError) as exc:
        # Type only: a backend message can carry an endpoint or key name.
        log.error("admin action failed: %s", type(exc).__name__)
        return _problem(503, "backend-unavailable",
                        f"the state store, broker or a connected system failed ({type(exc).__name__})")


def read_pause(body: bytes) -> PauseRequest:
    """An empty body is fine (no reason); otherwise a JSON object with an optional string ``reason``."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} expected")
    if not body.strip():
        return PauseRequest()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object like {{\"reason\": \"...\"}}, not {type(data).__name__}")
    try:
        return PauseRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadRequest(problems) from None


def read_error_filters(query: Mapping[str, str]) -> dict[str, Any]:
    """``map``, ``status`` (open, replayed, dismissed, all; default open) and ``limit`` (1..1000)."""
    unknown = sorted(set(query) - {"map", "status", "limit"})
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}; use map, status, limit")
    limit_text = query.get("limit") or "100"
    try:
        limit = int(limit_text)
    except ValueError:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}, not {limit_text!r}") from None
    return {"map_name": query.get("map") or None, "status": query.get("status") or "open", "limit": limit}


# --- the routes' logic ----------------------------------------------------------------------------
async def status(ops: Operations) -> Reply:
    return await answer(ops.status())


async def pause(ops: Operations, map_name: str, body: bytes) -> Reply:
    try:
        request = read_pause(body)
    except BadRequest as exc:
        return _problem(400, "bad-request", str(exc))
    return await answer(ops.pause(map_name, request.reason))


async def resume(ops: Operations, map_name: str) -> Reply:
    return await answer(ops.resume(map_name))


async def list_errors(ops: Operations, query: Mapping[str, str]) -> Reply:
    try:
        filters = read_error_filters(query)
    except BadRequest as exc:
        return _problem(400, "bad-request", str(exc))

    async def listed() -> dict[str, Any]:
        errors = await ops.errors(**filters)
        return {"errors": errors, "count": len(errors)}

    return await answer(listed())


async def show_error(ops: Operations, error_id: str) -> Reply:
    return await answer(ops.error(error_id))


async def replay_error(ops: Operations, error_id: str) -> Reply:
    return await answer(ops.replay(error_id))


async def replay_map(ops: Operations, map_name: str) -> Reply:
    return await answer(ops.replay_all(map_name))


async def replay_all(ops: Operations) -> Reply:
    return await answer(ops.replay_all())


async def dismiss(ops: Operations, error_id: str) -> Reply:
    return await answer(ops.dismiss(error_id))


StartInitialSync = Callable[[Sequence[str]], Awaitable[dict[str, Any]]]


async def start_initial_sync(maps: Sequence[str]) -> dict[str, Any]:
    """Publish distributed initial-sync work items for ``maps`` to the work queue (shared/bulk)."""
    from shared.bulk.distributed import publish_work
    from shared.runtime import get_runtime
    from shared.sync import factory

    range_rows = get_runtime().settings.initial_sync_range_rows
    return await publish_work(await factory.get_service(), maps, range_rows=range_rows)


async def initial_sync(ops: Operations, map_name: str, start: StartInitialSync = start_initial_sync) -> Reply:
    async def started() -> dict[str, Any]:
        ops.check_map(map_name)  # before anything is planned or published
        return await start([map_name])

    return await answer(started())


# --- the process-wide Operations of the function app -----------------------------------------------
async def _build_operations() -> Operations:
    from shared.runtime import get_runtime
    from shared.sync.factory import get_service

    runtime = get_runtime()
    service = await get_service()
    return Operations(runtime.catalog, service.state, service.transport, service.topic,
                      backlog=backlog_probe(runtime.settings, service.transport))


_ops: BuiltOnce[Operations] = BuiltOnce(_build_operations)


async def get_operations() -> Operations:
    """Operations over the sync service's own state store and transport (built once per process)."""
    return await _ops.get()
