"""Service Bus triggers fed from the embedded broker, with the host's settlement rules.

Peek-lock, then auto-complete when the function returns and abandon when it raises; the broker counts
deliveries and moves a message out of deliveries to the dead-letter queue (``MaxDeliveryCountExceeded``).
Session-enabled triggers take the next free session with its first message in one step and hold it
until that message is settled, so a session's messages are handled one by one, in order; a small
host-wide number of sessions run at once. Message locks (and with them the session's) are renewed
while a function runs, up to ``maxAutoLockRenewalDuration``.

Receivers do not poll: one watcher reads, after every change to the broker file (and when a scheduled
message or a lock falls due), which entities hold receivable messages, and wakes their receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import azure.functions.servicebus as azf_sb

from shared.transport.errors import TransportError
from shared.transport.local import LocalBroker
from shared.transport.messages import ReceivedMessage

from .discovery import HostedFunction
from .hostconfig import HostConfig
from .invoke import invoke
from .outputs import route_outputs
from .stats import ABANDONED, COMPLETED, DEAD_LETTERED, DELIVERED, OUTPUT_MESSAGES, HostStats
from .waker import BrokerWaker

log = logging.getLogger("dualsync.host")

DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"
MIN_IDLE = 0.02  # the broker watcher looks again at least this long after a look
MAX_IDLE = 1.0  # ... and at most this long after one, whatever it was told
BACKSTOP = 30.0  # an idle receiver receives at least this often, should a wake-up ever be missed

SubscriptionFilter = Callable[[str, str], str | None]


def map_filter(topic: str, subscription: str) -> str | None:
    """The subscription per map takes the notifications whose ``map`` property names it (what the
    publishers set, see ``ChangeNotification.to_message``)."""
    return "map = '" + subscription.replace("'", "''") + "'"


def to_function_message(m: ReceivedMessage) -> azf_sb.ServiceBusMessage:
    """The ``func.ServiceBusMessage`` the worker would build; a dead letter's reason and description are
    user properties, as Service Bus stores them."""
    props: dict[str, Any] = dict(m.application_properties)
    if m.dead_letter_reason is not None:
        props[DEAD_LETTER_REASON] = m.dead_letter_reason
        props[DEAD_LETTER_DESCRIPTION] = m.dead_letter_error_description or ""
    return azf_sb.ServiceBusMessage(
        body=m.body, message_id=m.message_id or "", session_id=m.session_id, content_type=m.content_type,
        correlation_id=m.correlation_id, subject=m.subject, label=m.subject,
        application_properties=props, user_properties=dict(props), delivery_count=m.delivery_count,
        enqueued_time_utc=m.enqueued_time_utc, scheduled_enqueue_time_utc=m.scheduled_enqueue_time_utc,
        sequence_number=m.sequence_number, enqueued_sequence_number=m.sequence_number,
        locked_until=m.locked_until_utc, lock_token=m.lock_token,
        dead_letter_reason=m.dead_letter_reason, dead_letter_error_description=m.dead_letter_error_description,
        dead_letter_source=m.dead_letter_source,
    )


class ServiceBusRunner:
    """One receive loop per Service Bus function; handlers run as tasks."""

    def __init__(self, broker: LocalBroker, functions: Sequence[HostedFunction], config: HostConfig,
                 stats: HostStats, waker: BrokerWaker, *, sessions: int,
                 subscription_filter: SubscriptionFilter = map_filter):
        self.broker = broker
        self.functions = list(functions)
        self.config = config
        self.stats = stats
        self.waker = waker
        self.subscription_filter = subscription_filter
        self._session_slots = asyncio.Semaphore(max(1, sessions))
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._ready: dict[str, asyncio.Event] = {}  # receive path -> set when it may hold work
        self._lock_duration: dict[str, float] = {}
        self._max_deliveries: dict[str, int] = {}
        self._requires_session: dict[str, bool] = {}
        self.in_flight = 0  # messages locked by this host and not settled yet
        self.activity = 0  # grows with every receive and settlement (idle detection)

    # --- entities -----------------------------------------------------------------------------------
    async def ensure_entities(self, with_outputs: Sequence[HostedFunction] = ()) -> None:
        """Create the queues, topics and subscriptions the triggers and the outputs of ``with_outputs``
        (any kind of function) need, when missing."""
        existing = {e.path: e for e in await self.broker.entities()}
        mdc = self.config.max_delivery_count
        # triggers on the entity itself first, so a dead-letter-only trigger does not decide its sessions
        for fn in sorted(self.functions, key=lambda f: f.dead_letter):
            if fn.queue is not None:
                if fn.queue not in existing:
                    await self.broker.create_queue(fn.queue, requires_session=fn.sessions, max_delivery_count=mdc)
            else:
                assert fn.topic is not None and fn.subscription is not None
                if fn.topic not in existing:
                    await self.broker.create_topic(fn.topic)
                if fn.entity not in existing:
                    await self.broker.create_subscription(
                        fn.topic, fn.subscription, filter=self.subscription_filter(fn.topic, fn.subscription),
                        requires_session=fn.sessions, max_delivery_count=mdc)
            existing = {e.path: e for e in await self.broker.entities()}
            info = existing[fn.entity]
            if not fn.dead_letter and info.requires_session != fn.sessions:
                log.warning("function %s: sessions %s but %s has requires_session=%s; receiving as the "
                            "entity says", fn.name, "on" if fn.sessions else "off", fn.entity,
                            info.requires_session)
            self._requires_session[fn.entity] = info.requires_session
            self._lock_duration[fn.entity] = info.lock_duration
            self._max_deliveries[fn.entity] = info.max_delivery_count
        for fn in [*self.functions, *with_outputs]:
            for out in fn.outputs:
                if out.queue and out.queue not in existing:
                    await self.broker.create_queue(out.queue, max_delivery_count=mdc)
                elif out.topic and out.topic not in existing:
                    await self.broker.create_topic(out.topic)
                existing = {e.path: e for e in await self.broker.entities()}

    # --- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        for fn in self.functions:
            self._ready.setdefault(fn.source, asyncio.Event())
        self._loops.append(asyncio.create_task(self._watch_ready(), name="sb-ready"))
        for fn in self.functions:
            self._loops.append(asyncio.create_task(self._receive_loop(fn), name=f"sb-{fn.name}"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop receiving, let running handlers finish for up to ``grace`` seconds, then cancel them
        (their messages are abandoned and come back after a restart)."""
        self._stopping.set()
        self.waker.poke()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    # --- what is ready ------------------------------------------------------------------------------
    async def _watch_ready(self) -> None:
        """One read of the whole broker after every change (and when a scheduled message or a lock is
        due) wakes the receivers whose entity holds work: idle receivers never poll, however many
        functions the app has."""
        while not self._stopping.is_set():
            seen = self.waker.version
            wait = MAX_IDLE
            try:
                readiness = await self.broker.ready()
            except Exception as exc:  # a locked or damaged file: look again soon, never stop looking
                log.error("cannot read the broker %s: %s", self.broker.path, exc)
            else:
                for path in readiness.paths:
                    if (event := self._ready.get(path)) is not None:
                        event.set()
                if readiness.next_in is not None:
                    wait = min(MAX_IDLE, max(MIN_IDLE, readiness.next_in))
            await self.waker.wait_change(seen, wait)

    async def _until_ready(self, ready: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), BACKSTOP)

    # --- receiving ----------------------------------------------------------------------------------
    async def _receive_loop(self, fn: HostedFunction) -> None:
        batch = self.config.max_message_batch_size if fn.many else 1
        sessions = self._requires_session.get(fn.entity, fn.sessions) and not fn.dead_letter
        calls = asyncio.Semaphore(1 if fn.many else max(1, self.config.max_concurrent_calls))
        slots = self._session_slots if sessions else calls
        ready = self._ready.setdefault(fn.source, asyncio.Event())
        while not self._stopping.is_set():
            ready.clear()  # before receiving: a message sent after this receive sets it again
            await slots.acquire()
            try:
                # A session-enabled entity locks the next free session with its messages in the same
                # step; the lock lasts until they are settled, so a record's changes stay in order.
                messages = await self.broker.receive(fn.source, batch)
            except asyncio.CancelledError:
                slots.release()
                raise
            except TransportError as exc:
                log.error("function %s: cannot receive from %s: %s", fn.name, fn.source, exc)
                messages = []
            if messages:
                self.activity += 1
                self._spawn(self._handle_and_release(fn, messages, slots), f"call-{fn.name}")
            else:
                slots.release()
                await self._until_ready(ready)

    async def _handle_and_release(self, fn: HostedFunction, messages: list[ReceivedMessage],
                                  slots: asyncio.Semaphore) -> None:
        try:
            failed = await self._handle(fn, messages)
            if failed and fn.dead_letter:
                # A dead letter is redelivered without limit; do not spin on one that keeps failing.
                await asyncio.sleep(1.0)
        finally:
            slots.release()
            self.waker.poke()  # settled: the session's next message (or a freed slot) may be taken now

    # --- one invocation -----------------------------------------------------------------------------
    async def _handle(self, fn: HostedFunction, messages: list[ReceivedMessage]) -> bool:
        """Invoke ``fn`` and settle; returns True when the function failed."""
        self.in_flight += len(messages)
        self.stats.add(DELIVERED, fn.name, len(messages))
        renewer = asyncio.create_task(self._renew_messages(fn, messages))
        try:
            converted = [to_function_message(m) for m in messages]
            invocation = await invoke(fn, converted if fn.many else converted[0])
            sent = await route_outputs(fn, invocation.outputs, self.broker)
            if sent:
                self.stats.add(OUTPUT_MESSAGES, fn.name, sent)
        except asyncio.CancelledError:
            renewer.cancel()
            await asyncio.shield(self._abandon(fn, messages, count=False))
            raise
        except Exception as exc:
            renewer.cancel()
            first = messages[0]
            log.warning("function %s failed on message %s (delivery %d): %s: %s", fn.name, first.message_id,
                        first.delivery_count, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self.stats.failure(fn.name, exc)
            await self._abandon(fn, messages, count=True)
            return True
        else:
            renewer.cancel()
            for m in messages:
                try:
                    await self.broker.complete(m)
                    self.stats.add(COMPLETED, fn.name)
                except TransportError as exc:  # the lock expired: the message comes back
                    log.warning("function %s: cannot complete %s: %s", fn.name, m.message_id, exc)
            return False
        finally:
            self.in_flight -= len(messages)
            self.activity += 1

    async def _abandon(self, fn: HostedFunction, messages: list[ReceivedMessage], *, count: bool) -> None:
        limit = self._max_deliveries.get(fn.entity, 10)
        for m in messages:
            try:
                await self.broker.abandon(m)
            except TransportError as exc:
                log.warning("function %s: cannot abandon %s: %s", fn.name, m.message_id, exc)
                continue
            if count:
                self.stats.add(ABANDONED, fn.name)
                if not fn.dead_letter and m.delivery_count >= limit:
                    self.stats.add(DEAD_LETTERED, fn.name)
                    log.warning("function %s: message %s dead-lettered after %d deliveries", fn.name,
                                m.message_id, m.delivery_count)

    # --- lock renewal -------------------------------------------------------------------------------
    def _renew_every(self, fn: HostedFunction) -> float:
        return max(0.05, self._lock_duration.get(fn.entity, 60.0) / 2)

    async def _renew_messages(self, fn: HostedFunction, messages: list[ReceivedMessage]) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.lock_renewal_seconds
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self._renew_every(fn))
            for m in messages:
                with contextlib.suppress(TransportError):
                    await self.broker.renew_lock(m)
