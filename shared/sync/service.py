"""What a per-map sync trigger calls: parse the notification, handle it, act on the outcome.

Acting on an outcome needs no trigger-specific settlement, so the same code serves Service Bus
functions (auto-complete on) and the local dev host: a retry or a paused map schedules a copy of the
notification and completes the original; a permanent failure is kept in the error store with its
reason and payload (the replay path), then completed. A crash (an exception escaping here) abandons
the message, and Service Bus's max delivery count dead-letters it for the dead-letter function.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import Span

from shared.events.notification import ChangeNotification
from shared.operations import SuccessMarker
from shared.state.base import StateStore
from shared.state.models import ErrorReport
from shared.state.scrub import scrub
from shared.sync.handler import SyncHandler
from shared.sync.outcome import Applied, Classification, DeadLetter, Outcome, Parked, Retry
from shared.telemetry import SYNC_SPAN, notification_attributes, record_outcome, span
from shared.transport.base import Transport
from shared.transport.messages import OutboundMessage

log = logging.getLogger("dualsync.sync")


@dataclass
class Delivery:
    """What the trigger knows about the message it received."""

    body: bytes
    message_id: str | None = None
    session_id: str | None = None
    delivery_count: int = 1


class SyncService:
    def __init__(self, handler: SyncHandler, state: StateStore, transport: Transport, topic: str):
        self.handler = handler
        self.state = state
        self.transport = transport
        self.topic = topic
        self.success = SuccessMarker(state)  # one per service: it throttles its own writes per map

    async def process(self, map_name: str, delivery: Delivery) -> Outcome:
        # One span per notification: map, record, side, attempt and outcome; never row contents.
        with span(SYNC_SPAN, **{"dualsync.map": map_name, "dualsync.delivery_count": delivery.delivery_count}) \
                as current:
            outcome = await self._process(map_name, delivery, current)
            record_outcome(current, outcome, failed=isinstance(outcome, DeadLetter))
            return outcome

    async def _process(self, map_name: str, delivery: Delivery, current: Span) -> Outcome:
        try:
            note = ChangeNotification.from_message(delivery.body)
        except Exception as exc:  # a body we cannot read is kept as a bad message, never dropped
            unreadable = DeadLetter(Classification.BAD_MESSAGE, f"unreadable notification: {exc}")
            await self._keep(map_name, None, delivery, unreadable)
            return unreadable
        current.set_attributes(notification_attributes(note))
        if note.map != map_name:
            misrouted = DeadLetter(Classification.BAD_MESSAGE,
                                   f"notification for map {note.map!r} reached the {map_name!r} subscription")
            await self._keep(map_name, note, delivery, misrouted)
            return misrouted
        record_id = str(note.record_id) if note.record_id is not None else None
        outcome = await self.handler.handle(map_name, note.source, record_id=record_id, key=note.key,
                                            attempt=note.attempt, version=note.version)
        if isinstance(outcome, Applied):
            await self._mark_success(map_name)
        elif isinstance(outcome, Retry | Parked):
            await self._schedule_again(note, outcome.delay_seconds)
        elif isinstance(outcome, DeadLetter):
            await self._keep(map_name, note, delivery, outcome)
        log.info("sync %s %s -> %s", map_name, note.record, type(outcome).__name__)
        return outcome

    async def _mark_success(self, map_name: str) -> None:
        # The change has landed; a failed status stamp must not make the trigger redeliver it.
        try:
            await self.success.mark(map_name)
        except Exception as exc:
            log.warning("sync %s: last success not recorded: %s", map_name, type(exc).__name__)

    async def _schedule_again(self, note: ChangeNotification, delay: float) -> None:
        again = note.model_copy(update={"attempt": note.attempt + 1})
        message = again.to_message()
        # the attempt is part of the message id: duplicate detection must not drop the retry
        retry = OutboundMessage(
            body=message.body, message_id=message.message_id,
            session_id=message.session_id, application_properties=dict(message.application_properties),
            content_type=message.content_type, correlation_id=message.correlation_id,
        )
        await self.transport.schedule(self.topic, retry, datetime.now(UTC) + timedelta(seconds=delay))

    async def _keep(self, map_name: str, note: ChangeNotification | None, delivery: Delivery,
                    outcome: DeadLetter) -> None:
        payload: Any
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            payload = delivery.body[:4096].decode("utf-8", "replace")
        await self.state.record_error(ErrorReport(
            map=map_name,
            key=note.record if note else "?",
            classification=outcome.classification,
            reason=outcome.reason,
            description=outcome.description,
            delivery_count=delivery.delivery_count,
            payload=scrub(payload),
            # One record per record stream and cause, not per message: every notification of a row reads
            # its current state, so all those queued when a bad value landed fail alike (occurrences count
            # them; replay of the latest covers all). An unreadable body has no stream: its own message.
            message_id=note.session_id if note else delivery.message_id,
            session_id=delivery.session_id,
        ))
        log.error("sync %s: %s kept in the error store: %s", map_name, outcome.classification.value,
                  outcome.reason)

    async def record_dead_letter(self, map_name: str, delivery: Delivery, reason: str | None,
                                 description: str | None) -> None:
        """A message Service Bus dead-lettered (max deliveries, expiry, ...): keep it with its reason."""
        classification = Classification.MAX_DELIVERIES if (reason or "").startswith("MaxDeliveryCount") \
            else Classification.UNKNOWN
        note: ChangeNotification | None
        try:
            note = ChangeNotification.from_message(delivery.body)
        except Exception:
            note = None
        await self._keep(map_name, note, delivery,
                         DeadLetter(classification, reason or "dead-lettered", description or ""))
