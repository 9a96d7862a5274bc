"""``POST /api/data/v9.2/$batch`` for the Dataverse emulator.

Behaviour (apis.md §4.3): at most 1000 requests; change sets are atomic (one SQLite savepoint,
all rolled back when one part fails, and the change set answers with that one failing response);
``Content-ID`` references (``$1``) in URLs and ``@odata.bind`` values; GET is not allowed inside
a change set. Without ``Prefer: odata.continue-on-error`` processing stops at the first failure and
the batch answers with that failure's status; with it, the batch answers 200 and every part runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.dataverse import errors
from sandbox.dataverse.errors import DataverseError
from sandbox.dataverse.service import (
    SERVICE_ROOT,
    ApiRequest,
    ApiResponse,
    DataverseService,
    error_response,
    parse_prefer,
)
from sandbox.odata import ODataSyntaxError
from sandbox.odata.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    count_requests,
    parse_batch,
    split_part_url,
    write_batch_response,
)

MAX_BATCH_REQUESTS = 1000


class _ChangeSetFailed(Exception):
    def __init__(self, response: BatchResponse) -> None:
        self.response = response


def _api_request(part: BatchRequest, content_ids: dict[str, str], outer_query: Mapping[str, str]) -> ApiRequest:
    url = part.url
    if url.startswith("$"):
        ref, _, tail = url.partition("/")
        if ref not in content_ids:
            raise errors.BadRequest(f"Content-ID Reference: '{ref}' does not exist in the batch context.")
        url = content_ids[ref] + ("/" + tail if tail else "")
    path, query_text = split_part_url(url)
    if "%" in path:
        path = unquote(path)
    if path.startswith(SERVICE_ROOT):
        path = path[len(SERVICE_ROOT):]
    elif path.startswith("/"):
        raise errors.ResourceNotFound(path.strip("/").split("/")[0] or path)
    query = dict(parse_qsl(query_text, keep_blank_values=True)) if query_text else {}
    if "tag" in outer_query and "tag" not in query:
        query["tag"] = outer_query["tag"]
    return ApiRequest(part.method, path.lstrip("/"), query, part.headers, part.body, dict(content_ids))


def _entity_path(resp: ApiResponse) -> str | None:
    eid = resp.headers.get("odata-entityid")
    if not eid:
        return None
    path = urlsplit(eid).path
    return path[len(SERVICE_ROOT):].lstrip("/") if path.startswith(SERVICE_ROOT) else None


def _to_part(resp: ApiResponse, content_id: str | None) -> BatchResponse:
    return BatchResponse(resp.status, resp.headers, resp.body, content_id)


def run_batch(service: DataverseService, body: bytes, content_type: str, headers: Mapping[str, str],
              query: Mapping[str, str], base_url: str) -> ApiResponse:
    try:
        parts = parse_batch(body, content_type)
    except ODataSyntaxError as exc:
        return error_response(errors.BadRequest(f"The batch request body is not valid: {exc}"))
    n = count_requests(parts)
    if n > MAX_BATCH_REQUESTS:
        return error_response(errors.BadRequest(
            f"The number of requests in batch is {n}, which exceeds the limit of {MAX_BATCH_REQUESTS}."))
    for p in parts:
        if isinstance(p, ChangeSet) and any(r.method == "GET" for r in p.requests):
            return error_response(errors.BadRequest("GET requests are not allowed inside a change set."))
    continue_on_error = "odata.continue-on-error" in parse_prefer(headers)
    results: list[BatchResponse | list[BatchResponse]] = []
    status = 200
    unexpected: BaseException | None = None
    # One SQLite transaction for the whole batch, each part (or change set) in its own savepoint:
    # a part still commits or rolls back alone, without a COMMIT per row. It commits even when a
    # part fails unexpectedly (that part's savepoint is already rolled back), as separate
    # transactions would have left the parts before it committed.
    with service.store.lock, service.store.transaction():
        try:
            for part in parts:
                failed = _run_part(service, part, query, base_url, results)
                if failed is not None and not continue_on_error:
                    status = failed
                    break
        except Exception as exc:  # re-raised below, once the parts before it are committed
            unexpected = exc
    if unexpected is not None:
        raise unexpected
    out, ctype = write_batch_response(results)
    h = {"content-type": ctype, "odata-version": "4.0"}
    if continue_on_error:
        h["preference-applied"] = "odata.continue-on-error"
    return ApiResponse(status, h, out)


def _run_part(service: DataverseService, part: BatchRequest | ChangeSet, query: Mapping[str, str],
              base_url: str, results: list[BatchResponse | list[BatchResponse]]) -> int | None:
    """Run one part, append its response(s); return the failing status, or None."""
    if isinstance(part, BatchRequest):
        try:
            req = _api_request(part, {}, query)
        except DataverseError as exc:
            resp = error_response(exc)
        else:
            resp = service.handle(req, base_url)
        results.append(_to_part(resp, part.content_id))
        return resp.status if resp.status >= 400 else None
    content_ids: dict[str, str] = {}
    responses: list[BatchResponse] = []
    try:
        with service.unit():
            for r in part.requests:
                try:
                    resp = service.execute(_api_request(r, content_ids, query), base_url)
                except DataverseError as exc:
                    raise _ChangeSetFailed(_to_part(error_response(exc), r.content_id)) from None
                except ODataSyntaxError as exc:
                    raise _ChangeSetFailed(_to_part(error_response(errors.BadRequest(str(exc))),
                                                    r.content_id)) from None
                if r.content_id is not None and (path := _entity_path(resp)) is not None:
                    content_ids[f"${r.content_id}"] = path
                responses.append(_to_part(resp, r.content_id))
    except _ChangeSetFailed as failed:
        results.append(failed.response)  # the whole change set answers with the one failure
        return failed.response.status
    results.append(responses)
    return None
