"""``$batch`` for Finance: parts run through :class:`FinanceService`; a change set runs in one SQLite
transaction and is rolled back as a whole when one of its requests fails (its response is then the
failing request's error). The batch itself answers 200; clients must read every part's status."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from sandbox.finance.errors import BadRequest, FinanceError
from sandbox.finance.service import Change, FinanceService, ODataRequest, ODataResponse
from sandbox.odata.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    parse_batch,
    split_part_url,
    write_batch_response,
)
from sandbox.odata.literals import ODataSyntaxError

MAX_OPERATIONS = 5_000  # "a batch can contain up to 5,000 operations" (apis.md §8)


class _ChangeSetFailed(Exception):
    def __init__(self, response: BatchResponse) -> None:
        self.response = response


def _to_request(part: BatchRequest) -> ODataRequest:
    url = part.url
    path, query = split_part_url(url)
    marker = "/data/"
    if marker in path:
        path = path.split(marker, 1)[1]
    elif path.startswith("/data"):
        path = path[len("/data"):]
    return ODataRequest(part.method, path.lstrip("/"), dict(parse_qsl(query)) if query else {}, part.headers,
                        part.body)


def _as_part(resp: ODataResponse, content_id: str | None) -> BatchResponse:
    return BatchResponse(resp.status, dict(resp.headers), resp.body, content_id)


def run_batch(svc: FinanceService, content_type: str, body: bytes) -> tuple[int, dict[str, str], bytes, list[Change]]:
    try:
        parts = parse_batch(body, content_type)
        total = sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)
        if total > MAX_OPERATIONS:
            raise BadRequest(f"The number of operations in the batch ({total}) exceeds the limit of {MAX_OPERATIONS}.")
    except ODataSyntaxError as exc:
        err = BadRequest(str(exc))
        return err.status, {"Content-Type": "application/json"}, json.dumps(err.body()).encode(), []
    except FinanceError as exc:
        return exc.status, {"Content-Type": "application/json"}, json.dumps(exc.body()).encode(), []
    items: list[BatchResponse | list[BatchResponse]] = []
    changes: list[Change] = []
    unexpected: BaseException | None = None
    # One SQLite transaction for the whole batch, each part (or change set) in its own savepoint:
    # a part still commits or rolls back alone, without a COMMIT per row. It commits even when a
    # part fails unexpectedly (that part's savepoint is already rolled back), as separate
    # transactions would have left the parts before it committed.
    with svc.store.transaction():
        try:
            _run_parts(svc, parts, items, changes)
        except Exception as exc:  # re-raised below, once the parts before it are committed
            unexpected = exc
    if unexpected is not None:
        raise unexpected
    payload, ctype = write_batch_response(items)
    return 200, {"Content-Type": ctype, "OData-Version": "4.0"}, payload, changes


def _run_parts(svc: FinanceService, parts: list[BatchRequest | ChangeSet],
               items: list[BatchResponse | list[BatchResponse]], changes: list[Change]) -> None:
    for part in parts:
        if isinstance(part, ChangeSet):
            pending: list[Change] = []
            responses: list[BatchResponse] = []
            try:
                with svc.store.transaction():
                    for req in part.requests:
                        if req.method == "GET":
                            raise _ChangeSetFailed(BatchResponse(400, {"Content-Type": "application/json"}, json.dumps(
                                BadRequest("A change set cannot contain a GET request.").body()).encode(),
                                req.content_id))
                        resp = svc.handle(_to_request(req))
                        if resp.status >= 400:
                            raise _ChangeSetFailed(_as_part(resp, req.content_id))
                        responses.append(_as_part(resp, req.content_id))
                        pending.extend(resp.changes)
            except _ChangeSetFailed as failed:
                items.append([failed.response])
                continue
            items.append(responses)
            changes.extend(pending)
        else:
            resp = svc.handle(_to_request(part))
            items.append(_as_part(resp, part.content_id))
            changes.extend(resp.changes)
