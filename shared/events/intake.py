"""The one entry point the HTTP triggers and the ingress-queue triggers call.

Checks run in a fixed order, cheapest and most revealing first, and the first failure raises a
:class:`~shared.events.errors.Rejection` — so a rejected request has nothing to publish:

1. size (413) — before anything reads the body;
2. shared secret ``x-dualsync-key`` (401), when one is configured, compared in constant time; the
   message is the same whether the header is missing or wrong;
3. content type (415): JSON, UTF-8;
4. JSON (400): UTF-8, nesting depth measured before parsing, no NaN/Infinity, no duplicated members;
5. shape (400), message name (422);
6. routing (422 for a table or entity no map covers).

``headers`` are HTTP request headers, or the Service Bus message's application properties (plus
``content-type``) for the ingress queue; names are matched case-insensitively. Queue messages may
lack a content type (the local broker's publish callables pass none): the queue trigger passes
``require_content_type=False``; a content type that is present must still be JSON.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from shared.catalog.models import Catalog
from shared.events.dataevents import is_data_event, route_data_event
from shared.events.dataverse import parse_context, route_change
from shared.events.errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType, shown
from shared.events.finance import parse_business_event, route_event
from shared.events.jsonbody import MAX_DEPTH, parse_json
from shared.events.notification import Origin
from shared.events.result import IntakeResult
from shared.mapping.compiler import CompiledMap

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # Dataverse strips contexts above 256 KB; leave headroom
SECRET_HEADER = "x-dualsync-key"
JSON_TYPES = ("application/json", "text/json")
CORRELATION_HEADER = "x-ms-correlation-request-id"


def normalise_headers(headers: Mapping[str, object]) -> dict[str, str]:
    """Lower-case names; Service Bus property values may be bytes or numbers."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        out[str(name).lower()] = str(value)
    return out


def check_size(body: bytes, max_body_bytes: int) -> None:
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"the body has {len(body)} bytes; the limit is {max_body_bytes}")


def check_secret(headers: Mapping[str, str], expected_secret: str | None) -> None:
    if expected_secret is None:
        return
    given = headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected_secret.encode("utf-8", "replace")):
        raise Unauthorized(f"missing or wrong {SECRET_HEADER} header")


def check_content_type(headers: Mapping[str, str], *, required: bool = True) -> None:
    raw = headers.get("content-type")
    if raw is None:
        if not required:
            return
        raise UnsupportedMediaType("Content-Type is missing; send application/json")
    media, *params = (part.strip() for part in raw.split(";"))
    media = media.lower()
    if media not in JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type {shown(media)} is not JSON; send application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"charset {shown(value.strip())} is not supported; send UTF-8")


def _preflight(body: bytes, headers: Mapping[str, object], max_body_bytes: int,
               expected_secret: str | None, require_content_type: bool) -> dict[str, str]:
    check_size(body, max_body_bytes)
    lowered = normalise_headers(headers)
    check_secret(lowered, expected_secret)
    check_content_type(lowered, required=require_content_type)
    return lowered


def accept_dataverse(
    body: bytes,
    headers: Mapping[str, object],
    catalog: Catalog,
    compiled: Mapping[str, CompiledMap] | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    expected_secret: str | None = None,
    origin: Origin = Origin.WEBHOOK,
    max_depth: int = MAX_DEPTH,
    received_at: datetime | None = None,
    require_content_type: bool = True,
) -> IntakeResult:
    """A Dataverse webhook or Service Bus endpoint body -> notifications (``compiled`` is unused:
    a Dataverse change is named by its guid and the handler resolves the key)."""
    lowered = _preflight(body, headers, max_body_bytes, expected_secret, require_content_type)
    change = parse_context(parse_json(body, max_depth=max_depth), lowered)
    return route_change(change, catalog, origin=origin, received_at=received_at or datetime.now(UTC))


def accept_finance(
    body: bytes,
    headers: Mapping[str, object],
    catalog: Catalog,
    compiled: Mapping[str, CompiledMap],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    expected_secret: str | None = None,
    origin: Origin = Origin.BUSINESS_EVENT,
    max_depth: int = MAX_DEPTH,
    received_at: datetime | None = None,
    require_content_type: bool = True,
) -> IntakeResult:
    """A Finance business event or data event body -> notifications, keyed by the integration key.

    Business events carry a ControlNumber: the result's ``control`` stamp lets the publisher drop stale
    and duplicate ones. Data events are RemoteExecutionContexts (:mod:`shared.events.dataevents`)."""
    lowered = _preflight(body, headers, max_body_bytes, expected_secret, require_content_type)
    data = parse_json(body, max_depth=max_depth)
    received = received_at or datetime.now(UTC)
    if is_data_event(data):
        return route_data_event(data, lowered, catalog, compiled, origin=origin, received_at=received)
    event = parse_business_event(data)
    correlation = lowered.get(CORRELATION_HEADER)
    return route_event(
        event, catalog, compiled, origin=origin, received_at=received,
        correlation_id=correlation if correlation and len(correlation) <= 128 and correlation.isprintable() else None,
    )
