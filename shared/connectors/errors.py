"""Typed connector errors, mapped from HTTP status and service error code in ONE table.

The retry policy and the sync engine decide from the error's type (``retryable`` and the class),
never from message text. Each error carries the service, method, path (never the query string,
which may hold keys such as ``code=``), status, the service's error code and its message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class Service(StrEnum):
    DATAVERSE = "dataverse"
    FINANCE = "finance"


class ConnectorError(Exception):
    """A call to Dataverse or Finance failed. ``retryable`` says whether trying again may help."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        service: Service | str,
        method: str,
        path: str,
        status: int | None = None,
        code: str = "",
        message: str = "",
    ) -> None:
        self.service = Service(service)
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        status = self.status if self.status is not None else "-"
        code = f" [{self.code}]" if self.code else ""
        return f"{type(self).__name__}: {self.service} {self.method} {self.path} -> {status}{code} {self.message}".rstrip()

    def __repr__(self) -> str:
        return f"<{self}>"


class Throttled(ConnectorError):
    """429: the service asks us to slow down; ``retry_after`` in seconds when it said."""

    retryable = True

    def __init__(
        self, *, retry_after: float | None = None, limit: tuple[int, float] | None = None, **kw: Any
    ) -> None:
        self.retry_after = retry_after
        self.limit = limit
        super().__init__(**kw)


class Transient(ConnectorError):
    """5xx, timeouts and connection errors: the same request may succeed later."""

    retryable = True


class NotFound(ConnectorError):
    """404: the addressed row (or route) does not exist."""


class LookupTargetMissing(NotFound):
    """A Dataverse ``@odata.bind`` points at a row that does not exist (yet).

    The sync engine retries these as "dependency missing": the parent may still arrive.
    """

    def __init__(self, *, entity_set: str, key: str, **kw: Any) -> None:
        self.entity_set = entity_set
        self.key = key
        super().__init__(**kw)

    def __str__(self) -> str:
        return super().__str__() + f" (lookup target {self.entity_set}{self.key} missing)"


class Precondition(ConnectorError):
    """412: an ``If-Match`` / ``If-None-Match`` condition failed (stale ETag, row already exists)."""


class Conflict(ConnectorError):
    """409, or a duplicate key / duplicate-detection hit reported with another status."""


class Validation(ConnectorError):
    """400 (and other 4xx): the service rejected the request; retrying it unchanged won't help."""


class MessageUnsupported(Validation):
    """Dataverse: the table doesn't take this message (e.g. ``UpsertMultiple`` on a table without
    the bulk messages); the same rows can go another way."""


class Auth(ConnectorError):
    """401 after a token refresh, or 403: identity or privileges are wrong."""


class ForeignLink(ConnectorError):
    """A ``@odata.nextLink`` / ``@odata.deltaLink`` pointed outside the configured environment."""


class DeltaTokenExpired(ConnectorError):
    """Dataverse no longer knows the change-tracking token; a full re-read is needed."""


@dataclass(frozen=True)
class Rule:
    """One row of the error table: first match wins. ``code`` matches the service error code."""

    error: type[ConnectorError]
    statuses: tuple[int, ...] = ()
    codes: tuple[str, ...] = ()
    service: Service | None = None
    # Only for Finance, whose errors carry no code: a phrase of its infolog (lower case).
    phrases: tuple[str, ...] = ()

    def matches(self, service: Service, status: int, code: str, message: str) -> bool:
        if self.service is not None and self.service != service:
            return False
        if self.codes and code.lower() not in self.codes:
            return False
        if self.phrases and not any(p in message.lower() for p in self.phrases):
            return False
        return not self.statuses or status in self.statuses


_5XX = tuple(range(500, 600))

# Dataverse service error codes (hex, lower case) with a meaning beyond their HTTP status.
DV_SERVICE_PROTECTION = ("0x80072322", "0x80072321", "0x80072326")
DV_DUPLICATE = ("0x80040237", "0x80060892", "0x80040333", "0x80073002")
DV_TRANSIENT_SQL = ("0x80044150", "-2147204784", "-2147204783")  # generic SQL error, deadlock, SQL timeout
DV_DELTA_EXPIRED = ("0x80044352",)
DV_UNSUPPORTED_MESSAGE = ("0x80040800",)  # SdkEntityDoesNotSupportMessage
FO_DUPLICATE = ("the record already exists", "record already exists")  # change tracking token expired / invalid version stamp

ERROR_TABLE: tuple[Rule, ...] = (
    Rule(Throttled, statuses=(429,)),
    Rule(Throttled, codes=DV_SERVICE_PROTECTION, service=Service.DATAVERSE),
    Rule(DeltaTokenExpired, codes=DV_DELTA_EXPIRED, service=Service.DATAVERSE),
    Rule(Conflict, statuses=(409,)),
    # A duplicate is a conflict whatever status carries it (412 on If-None-Match is precondition).
    Rule(Precondition, statuses=(412,)),
    Rule(Conflict, codes=DV_DUPLICATE, service=Service.DATAVERSE),
    Rule(Transient, codes=DV_TRANSIENT_SQL, service=Service.DATAVERSE),
    Rule(MessageUnsupported, codes=DV_UNSUPPORTED_MESSAGE, service=Service.DATAVERSE),
    # Finance reports a duplicate key on create as a write failure (400/500) whose infolog says so.
    Rule(Conflict, statuses=(400, 500), service=Service.FINANCE, phrases=FO_DUPLICATE),
    Rule(Auth, statuses=(401, 403)),
    Rule(NotFound, statuses=(404, 410)),
    Rule(Transient, statuses=(408, *_5XX)),
    Rule(Validation, statuses=tuple(range(400, 500))),
)


def service_error(body: Any) -> tuple[str, str]:
    """(code, message) from an OData error body; Finance's inner message wins when present."""
    if not isinstance(body, Mapping):
        return "", ""
    err = body.get("error")
    if not isinstance(err, Mapping):
        # ASP.NET Web API style: {"Message": "No HTTP resource was found ..."}
        return "", str(body.get("Message") or body.get("message") or "")
    code = str(err.get("code") or "")
    message = str(err.get("message") or "")
    inner = err.get("innererror")
    if isinstance(inner, Mapping) and inner.get("message"):
        message = f"{message} {inner['message']}".strip()
    return code, message


# The request-count limit as both services word it (Dataverse 0x80072322, Finance user-based limits):
# "Number of requests exceeded the limit of 6000 over (the) time window of 300 seconds."
_REQUEST_LIMIT = re.compile(r"limit of (\d+) over (?:the )?time window of (\d+(?:\.\d+)?) seconds", re.IGNORECASE)


def request_limit(message: str) -> tuple[int, float] | None:
    """(requests, window seconds) when a 429 states its request-count limit; a pacing hint only."""
    m = _REQUEST_LIMIT.search(message)
    return (int(m.group(1)), float(m.group(2))) if m else None


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def classify(
    *,
    service: Service,
    method: str,
    path: str,
    status: int,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> ConnectorError:
    """The typed error for a failed response (status >= 400), chosen by :data:`ERROR_TABLE`."""
    code, message = service_error(body)
    kw: dict[str, Any] = {
        "service": service, "method": method, "path": path, "status": status, "code": code, "message": message,
    }
    for rule in ERROR_TABLE:
        if rule.matches(service, status, code, message):
            if rule.error is Throttled:
                return Throttled(
                    retry_after=parse_retry_after((headers or {}).get("retry-after")),
                    limit=request_limit(message), **kw,
                )
            return rule.error(**kw)
    return ConnectorError(**kw)
