"""What a batched write is made of, and what came of each row. Shared by both connectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.connectors.errors import ConnectorError
from shared.connectors.odata import Key


@dataclass(frozen=True)
class Upsert:
    """Create or update the row at ``key`` with ``row``.

    ``lookups`` (Dataverse) maps a single-valued navigation property to (entity set, key) and is
    sent as ``<nav>@odata.bind``. ``if_match`` sends ``If-Match`` (``*`` = update only, an ETag =
    optimistic concurrency); ``create_only`` sends ``If-None-Match: *``.
    """

    key: Key
    row: Mapping[str, Any]
    lookups: Mapping[str, tuple[str, Key]] = field(default_factory=dict)
    if_match: str | None = None
    create_only: bool = False


@dataclass(frozen=True)
class Delete:
    key: Key
    if_match: str | None = None


Write = Upsert | Delete


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one write in a batch; ``error`` is None when it landed."""

    write: Write
    error: ConnectorError | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
