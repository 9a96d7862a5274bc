"""The internal change notification: "look at record K of map M", and its broker message form.

A notification never carries row data: the per-map handler reads the source's current state, so
order, duplicates and stripped payloads do not matter (DESIGN.md, Flow). What it carries decides
two broker ids (DESIGN.md, Contracts):

- ``message_id`` from (map, record, version) — the same change announced twice (a webhook redelivery,
  a webhook and a timer pull of the same version) gets the same id and Service Bus duplicate
  detection drops the second. Without a version, the change id (Dataverse OperationId, Finance
  EventId) stands in, so distinct changes differ while a redelivery of the same one does not. A
  rescheduled retry (``attempt`` > 0) gets its own id, or duplicate detection would swallow it.
- ``session_id`` from (map, record) — one record's changes are handled in order.

"record" is the Dataverse guid for Dataverse-sourced changes (the handler resolves the integration
key by reading the row) and the integration key string otherwise. Both ids stay within Service
Bus's 128 characters: long ones become the map name (truncated) and a sha256.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.catalog.models import MapName, Side
from shared.events.errors import InvalidShape, MalformedJson
from shared.events.jsonbody import parse_json
from shared.transport.messages import OutboundMessage

MAX_ID_LENGTH = 128  # Service Bus MessageId and SessionId
MAX_KEY_LENGTH = 4096
CONTENT_TYPE = "application/json"

ShortText = Annotated[str, Field(max_length=256)]


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNKNOWN = "unknown"


class Origin(StrEnum):
    WEBHOOK = "webhook"
    SERVICEBUS_ENDPOINT = "servicebus-endpoint"
    BUSINESS_EVENT = "business-event"
    TIMER = "timer"
    RECONCILE = "reconcile"
    INITIAL_SYNC = "initial-sync"
    REPLAY = "replay"


def bounded_id(map_name: str, *parts: str) -> str:
    """``map:part:part`` when it fits in 128 characters, else ``map~sha256`` (map name truncated)."""
    plain = ":".join((map_name, *parts))
    if len(plain) <= MAX_ID_LENGTH:
        return plain
    digest = hashlib.sha256("\x1f".join((map_name, *parts)).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{map_name[: MAX_ID_LENGTH - len(digest) - 1]}~{digest}"


class ChangeNotification(BaseModel):
    """One change of one record of one map (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    map: MapName
    source: Side
    record_id: UUID | None = Field(None, description="Dataverse primary id, when the source is Dataverse")
    key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH)] | None = Field(
        None, description="integration key (key_to_string), when known; always for Finance sources"
    )
    operation: Operation = Operation.UNKNOWN
    version: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Dataverse versionnumber or Finance ControlNumber"
    )
    time: AwareDatetime = Field(description="when the change happened, UTC")
    correlation_id: ShortText | None = None
    change_id: ShortText | None = Field(
        None, description="the sender's id of this change (Dataverse OperationId, Finance EventId)"
    )
    attempt: Annotated[int, Field(ge=0)] = 0
    origin: Origin
    depth: Annotated[int, Field(ge=0)] | None = Field(None, description="Dataverse Depth (loop guard)")
    tag: ShortText | None = Field(None, description="Dataverse SharedVariables 'tag': our own write's marker")

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _identified(self) -> ChangeNotification:
        if self.source is Side.FINANCE and self.key is None:
            raise ValueError("a Finance-sourced notification carries the integration key")
        if self.record_id is None and self.key is None:
            raise ValueError("a notification names its record by record_id or key")
        return self

    @property
    def record(self) -> str:
        """What identifies the record in ids: the guid for Dataverse sources, else the key."""
        if self.source is Side.DATAVERSE and self.record_id is not None:
            return str(self.record_id)
        assert self.key is not None  # guaranteed by _identified
        return self.key

    @property
    def message_id(self) -> str:
        if self.version is not None:
            change = f"v{self.version}"
        elif self.change_id is not None:
            change = f"c{self.change_id.lower()}"
        else:  # a pull without version or id: the change time is all that tells changes apart
            change = f"t{self.time.isoformat()}"
        parts = [self.source.value, self.record, change]
        if self.attempt:
            parts.append(f"a{self.attempt}")
        return bounded_id(self.map, *parts)

    @property
    def session_id(self) -> str:
        return bounded_id(self.map, self.source.value, self.record)

    def to_message(self) -> OutboundMessage:
        return OutboundMessage(
            body=self.model_dump_json(exclude_none=True).encode("utf-8"),
            message_id=self.message_id,
            session_id=self.session_id,
            application_properties={
                "map": self.map,
                "source": self.source.value,
                "operation": self.operation.value,
            },
            content_type=CONTENT_TYPE,
            correlation_id=self.correlation_id,
        )

    @classmethod
    def from_message(cls, body: bytes) -> ChangeNotification:
        """Parse a message body back; :class:`MalformedJson` / :class:`InvalidShape` when it is bad."""
        data = parse_json(body)
        if not isinstance(data, dict):
            raise MalformedJson("a change notification is a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            path = ".".join(str(p) for p in err["loc"])
            raise InvalidShape(path, f"is invalid: {err['msg']}") from None
