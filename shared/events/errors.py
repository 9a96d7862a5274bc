"""Typed rejections of inbound change notifications.

Each rejection carries the HTTP status the trigger answers with and a message naming what was
wrong: the member path and, at most, a short truncated value — never the body, never a secret.

Status choices:
- 400 for bodies that are not what the sender's format promises (bad JSON, bad shape).
- 422 for well-formed notifications we cannot route: an unknown table or entity, and a message
  name other than Create/Update/Delete (``UnsupportedMessage``). The sender is fine; the
  registration is wrong (a step on a table or message no map covers), so 422 tells the operator
  where to look. Dataverse retries only 502/503/504, so neither status causes a retry storm.
"""

from __future__ import annotations

from typing import Any, ClassVar

MAX_SHOWN = 40  # characters of an offending value we are willing to echo


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """A short, safe rendering of an offending value for an error message."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "..."
        return repr(text)
    if isinstance(value, dict):
        return f"an object with {len(value)} members"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Rejection(Exception):
    """A request refused before anything was published."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "rejected"

    def __init__(self, message: str, *, path: str | None = None):
        self.message = message
        self.path = path
        super().__init__(message)

    def as_dict(self) -> dict[str, Any]:
        """The response body the HTTP trigger returns (problem-details style, no payload echo)."""
        body: dict[str, Any] = {"error": self.code, "status": self.status, "message": self.message}
        if self.path:
            body["path"] = self.path
        return body


class MalformedJson(Rejection):
    status = 400
    code = "malformed_json"


class InvalidShape(Rejection):
    """The JSON parsed but a member is missing or of the wrong type or form."""

    status = 400
    code = "invalid_shape"

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path} {problem}" if path else problem, path=path or None)


class UnsupportedMessage(Rejection):
    status = 422
    code = "unsupported_message"


class UnknownTable(Rejection):
    status = 422
    code = "unknown_table"


class UnknownEntity(Rejection):
    status = 422
    code = "unknown_entity"


class PayloadTooLarge(Rejection):
    status = 413
    code = "payload_too_large"


class Unauthorized(Rejection):
    status = 401
    code = "unauthorized"


class UnsupportedMediaType(Rejection):
    status = 415
    code = "unsupported_media_type"
