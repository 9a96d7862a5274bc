"""Handle one change notification: read the source's current state, map it, write the target.

A notification only says "look at record K of map M", so order, duplicates and missing payloads do
not matter: the handler always reads the source as it is now (promise 1). The ledger per map, record
and target side keeps the last applied source version and the hash of the last row written, so an
older version never overwrites a newer one (promise 3), a repeat does nothing (promise 5), and our
own write coming back from the other side maps to the same row and is skipped (promise 4).

On a bidirectional map a write from A to B also tells what A holds: the ledger "to A" is set to A's
row as it would be written from B. So the echo of the write, arriving from B, is "unchanged" without
reading A, and an echo that arrives after A was edited again is never written back over that edit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared.catalog.models import DeleteBehaviour, Direction, Side
from shared.mapping import CompiledMap, row_hash
from shared.mapping.compiler import key_to_string
from shared.state.base import StateStore
from shared.state.errors import ConcurrencyError
from shared.state.models import LedgerEntry, RunState
from shared.sync.decisions import Policy, decide
from shared.sync.outcome import Applied, Outcome, Parked, Skipped
from shared.sync.sides import SideAdapter

log = logging.getLogger("dualsync.sync")

_ALIAS_PREFIX = "record-id"


def ledger_key(key: str, target: Side) -> str:
    """One ledger entry per record and target side (bidirectional maps write both ways)."""
    return f"{key}|to-{target.value}"


def alias_name(map_name: str, record_id: str) -> str:
    return f"{_ALIAS_PREFIX}:{map_name}:{record_id.lower()}"


class SyncHandler:
    """The engine behind every per-map sync function; knows nothing of its trigger."""

    def __init__(self, compiled: Mapping[str, CompiledMap], sides: Mapping[Side, SideAdapter],
                 state: StateStore, policy: Policy | None = None):
        self.compiled = compiled
        self.sides = sides
        self.state = state
        self.policy = policy or Policy()

    async def handle(self, map_name: str, source: Side, *, record_id: str | None = None,
                     key: str | None = None, attempt: int = 0, version: int | None = None) -> Outcome:
        """Apply one change; every failure becomes an outcome (decided in :mod:`decisions`)."""
        try:
            return await self._handle(map_name, source, record_id=record_id, key=key, version=version)
        except Exception as exc:  # decided in one table; nothing is swallowed: it becomes an outcome
            outcome = decide(exc, attempt, self.policy)
            log.warning("sync %s from %s (%s): %s -> %s", map_name, source.value, key or record_id,
                        type(exc).__name__, type(outcome).__name__)
            return outcome

    async def _handle(self, map_name: str, source: Side, *, record_id: str | None, key: str | None,
                      version: int | None) -> Outcome:
        cm = self.compiled[map_name]
        if source not in cm.map.sources:
            return Skipped(f"{source.value} is not a source of map {map_name}")
        state = await self.state.get_map_state(map_name)
        if state.state is RunState.PAUSED:
            return Parked(self.policy.pause_delay)
        target = source.other
        key_tuple = _parse_key(key) if key else None

        current = await self.sides[source].read(cm, key=key_tuple, record_id=record_id)
        if current.row is None or current.filtered:
            return await self._gone(cm, source, target, key_tuple, record_id, filtered=current.filtered)

        row = current.row
        key_tuple = cm.integration_key(source, row)
        key_text = key_to_string(key_tuple)
        if record_id is not None:
            await self._remember_alias(map_name, record_id, key_text)
        source_version = current.version if current.version is not None else version
        mapped = cm.to_side(target)(row)
        digest = row_hash(mapped)

        ledger = await self.state.get_ledger(map_name, ledger_key(key_text, target))
        if ledger is not None:
            # versions are comparable only when they come from the same side
            if source_version is not None and ledger.source_side == source.value \
                    and ledger.source_version > source_version:
                return Skipped("stale", key_text)
            if ledger.target_hash == digest:
                return Skipped("unchanged", key_text)
        bidirectional = cm.map.direction is Direction.BIDIRECTIONAL
        # The target is read only on first contact: once the ledger knows what it holds, a digest that
        # differs from it is a change to write (the read cost a round trip on every change)
        if bidirectional and ledger is None and await self._target_already_equal(cm, target, key_tuple, mapped):
            await self._record(map_name, key_text, target, source, source_version, digest, ledger)
            await self._record_source_holds(cm, key_text, source, mapped)
            return Skipped("unchanged", key_text)

        await self.sides[target].write(cm, key_tuple, mapped)
        await self._record(map_name, key_text, target, source, source_version, digest, ledger)
        if bidirectional:
            await self._record_source_holds(cm, key_text, source, mapped)
        return Applied("upsert", key_text)

    async def _record_source_holds(self, cm: CompiledMap, key_text: str, source: Side,
                                   mapped: dict[str, Any]) -> None:
        """Set the ledger "to source" to the source row as the other side would write it (the round trip
        of what was just written), so the echo of this write maps to an unchanged row."""
        try:
            held = row_hash(cm.to_side(source)(mapped))
        except Exception as exc:  # a row that does not round-trip is only compared the slow way
            log.debug("sync %s: no round trip for %s: %s", cm.name, key_text, type(exc).__name__)
            return
        key = ledger_key(key_text, source)
        previous = await self.state.get_ledger(cm.name, key)
        if previous is not None and previous.target_hash == held:
            return
        entry = LedgerEntry(map=cm.name, key=key, source_version=0, source_side=source.value, target_hash=held)
        try:
            if previous is None:
                await self.state.put_ledger(entry, only_if_absent=True)
            else:
                await self.state.put_ledger(entry, expected_etag=previous.etag)
        except ConcurrencyError:
            pass  # a write into the source side meanwhile recorded what it wrote, which is newer

    async def _target_already_equal(self, cm: CompiledMap, target: Side, key: tuple[Any, ...],
                                    mapped: dict[str, Any]) -> bool:
        """On bidirectional maps an echo maps to what the target already holds: no write, no loop."""
        plain = {k: v for k, v in mapped.items() if not isinstance(v, dict)}
        current = await self.sides[target].current(cm, key, list(plain))
        return current is not None and all(current.get(k) == v for k, v in plain.items())

    async def _record(self, map_name: str, key_text: str, target: Side, source: Side,
                      version: int | None, digest: str, previous: LedgerEntry | None) -> None:
        entry = LedgerEntry(map=map_name, key=ledger_key(key_text, target), source_version=version or 0,
                            source_side=source.value, target_hash=digest)
        if previous is None:
            try:
                await self.state.put_ledger(entry, only_if_absent=True)
            except ConcurrencyError:
                # another handler applied this record meanwhile; keep the newer version
                latest = await self.state.get_ledger(map_name, entry.key)
                if latest is not None and latest.source_version <= entry.source_version:
                    await self.state.put_ledger(entry, expected_etag=latest.etag)
        else:
            await self.state.put_ledger(entry, expected_etag=previous.etag)

    async def _gone(self, cm: CompiledMap, source: Side, target: Side, key: tuple[Any, ...] | None,
                    record_id: str | None, *, filtered: bool) -> Outcome:
        """The source row is deleted (or no longer passes the map's filter)."""
        if key is None and record_id is not None:
            alias = await self.state.get_checkpoint(alias_name(cm.name, record_id))
            key = _parse_key(alias.data["key"]) if alias else None
        if key is None:
            return Skipped("deleted before it was ever synced")
        key_text = key_to_string(key)
        if cm.map.delete is DeleteBehaviour.IGNORE:
            return Skipped("filtered out" if filtered else "deletes are not synced for this map", key_text)
        if filtered:
            return Skipped("filtered out", key_text)
        await self.sides[target].delete(cm, key)
        await self.state.delete_ledger(cm.name, ledger_key(key_text, target))
        if cm.map.direction is Direction.BIDIRECTIONAL:
            await self.state.delete_ledger(cm.name, ledger_key(key_text, source))
        return Applied("delete", key_text)

    async def _remember_alias(self, map_name: str, record_id: str, key_text: str) -> None:
        name = alias_name(map_name, record_id)
        existing = await self.state.get_checkpoint(name)
        if existing is None or existing.data.get("key") != key_text:
            await self.state.put_checkpoint(name, {"key": key_text})


def _parse_key(text: str) -> tuple[Any, ...]:
    import json

    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("an integration key is a JSON array")
    return tuple(value)
