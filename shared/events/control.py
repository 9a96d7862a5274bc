"""Finance ControlNumber tracking: drop stale and duplicate business events.

Finance: "The control number is an upwardly increasing number, which can be tracked by the consuming
application to detect duplication and/or out of order delivery ... There can be gaps" (apis.md §9).

What is tracked, and why this key: the last control number that passed, per **(Finance entity, legal
entity, record key)** — one Finance row.

- Per record, not per business event id or legal entity alone: control numbers come from one counter
  for every event, so comparing two *different* records' events would drop a perfectly good change
  whenever two records' events arrive out of order.
- Per entity, not per business event id: a notification carries no row data, it only says "read
  record K" (DESIGN.md, Flow). Once an event with control number n for a row has passed, the row read
  for it already holds every change committed before n — so a late Updated event (n-1) after a
  Deleted event (n) says nothing new, and neither does a redelivered Created event. Tracking per
  event id would let those through.
- The entity is the map's canonical ``finance.entity`` (an event naming the entity set ``CustomersV3``
  and one naming ``CustCustomerV3Entity`` are the same row); the record key is the integration key of
  the first routed map by name (it already holds ``dataAreaId`` for company-striped maps); the legal
  entity is ``BusinessEventLegalEntity`` in upper case, as the key expresses companies.

Cost: one checkpoint read and one conditional write per event (``only_if_absent`` for a first event,
``expected_etag`` after). Two concurrent events for one row cannot both pass with the same or an
older number: the loser of the write race reads again and decides again (bounded), so a duplicate is
always answered as stale and at most one event passes per control number.

A claim is taken *before* publishing; :meth:`ControlNumberTracker.release` puts the checkpoint back
when publishing fails, so the sender's retry is not mistaken for a duplicate (promise 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.state.base import StateStore
from shared.state.errors import ConcurrencyError
from shared.state.models import Checkpoint

CHECKPOINT_PREFIX = "controlnumber|"
MAX_ATTEMPTS = 5  # read-decide-write rounds when concurrent events for the same row keep racing


@dataclass(frozen=True)
class ControlStamp:
    """One business event's control number and the row it is about."""

    entity: str
    legal_entity: str
    record_key: str
    control_number: int

    @property
    def checkpoint_name(self) -> str:
        return f"{CHECKPOINT_PREFIX}{self.entity}|{self.legal_entity}|{self.record_key}"

    @property
    def subject(self) -> str:
        return f"{self.entity} {self.record_key} in {self.legal_entity or 'no legal entity'}"


@dataclass(frozen=True)
class Claim:
    """The checkpoint now holds this stamp's number; ``previous`` is what it held before (None: nothing)."""

    stamp: ControlStamp
    written: Checkpoint
    previous: Checkpoint | None


@dataclass(frozen=True)
class Stale:
    """The event is a duplicate or arrived after a newer one for the same row."""

    stamp: ControlStamp
    last_seen: int

    @property
    def reason(self) -> str:
        kind = "duplicate" if self.stamp.control_number == self.last_seen else "older"
        return (f"stale control number {self.stamp.control_number} ({kind}; {self.last_seen} already passed "
                f"for {self.stamp.subject})")


class ControlNumberContention(Exception):
    """The checkpoint kept changing under us; the caller lets the sender retry (HTTP 503 / redelivery)."""


def _last(checkpoint: Checkpoint | None) -> int | None:
    if checkpoint is None:
        return None
    value = checkpoint.data.get("control_number")
    return value if isinstance(value, int) else None


class ControlNumberTracker:
    def __init__(self, store: StateStore):
        self.store = store

    async def claim(self, stamp: ControlStamp) -> Claim | Stale:
        """Let the event pass (recording its number) or say why it is stale."""
        name = stamp.checkpoint_name
        data: dict[str, Any] = {"control_number": stamp.control_number}
        for _ in range(MAX_ATTEMPTS):
            current = await self.store.get_checkpoint(name)
            last = _last(current)
            if last is not None and stamp.control_number <= last:
                return Stale(stamp, last)
            try:
                if current is None:
                    written = await self.store.put_checkpoint(name, data, only_if_absent=True)
                else:
                    written = await self.store.put_checkpoint(name, data, expected_etag=current.etag)
            except ConcurrencyError:
                continue  # another event for this row wrote first: decide again on what it wrote
            return Claim(stamp, written, current)
        raise ControlNumberContention(f"control number checkpoint for {stamp.subject} kept changing")

    async def release(self, claim: Claim) -> None:
        """Undo a claim whose event was not published, unless a newer event has passed since."""
        name = claim.stamp.checkpoint_name
        try:
            if claim.previous is None:
                await self.store.delete_checkpoint(name, expected_etag=claim.written.etag)
            else:
                await self.store.put_checkpoint(name, claim.previous.data, expected_etag=claim.written.etag)
        except ConcurrencyError:
            pass  # a newer event passed meanwhile: its notification covers this row
