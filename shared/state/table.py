"""Azure Table Storage state store (the storage account the Functions host already has).

Layout: one table per record kind, named ``<prefix>Ledger``, ``<prefix>Checkpoints``,
``<prefix>Errors``, ``<prefix>MapStates``. Ledger and errors are partitioned by map so one map's
records are listed with a single-partition query. Keys are escaped (see :mod:`.keys`); readable
values are stored as ordinary properties. Optimistic concurrency uses the service's own ETags with
``MatchConditions.IfNotModified``. Tested against Azurite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)
from azure.data.tables.aio import TableClient, TableServiceClient

from .errorlog import merge_error, payload_json
from .errors import ConcurrencyError, NotFoundError, StateStoreError
from .keys import encode_key
from .models import (
    Checkpoint,
    ErrorRecord,
    ErrorReport,
    ErrorStatus,
    LedgerEntry,
    MapState,
    RunState,
    utcnow,
)
from .stamps import parse_stamp, stamp_text

# One string property holds at most 64 KiB (32K UTF-16 units); 16K characters fit even if every
# one is a surrogate pair. An entity holds at most 1 MiB, so the payload gets at most 28 chunks.
_CHUNK_CHARS = 16_000
_MAX_CHUNKS = 28
_CHECKPOINT_CHARS = 30_000
_MAP_STATE_PARTITION = "map"
_CHECKPOINT_PARTITION = "checkpoint"
_UPSERT_ATTEMPTS = 20
_BATCH_SIZE = 100  # operations per entity group transaction
_KEYS_PER_QUERY = 14  # row keys per bulk ledger read: with the partition's, the service's 15 comparisons
_READ_CONCURRENCY = 8  # bulk ledger reads in flight at once

Credential = AzureNamedKeyCredential | AzureSasCredential | AsyncTokenCredential


_ts = stamp_text
_dt = parse_stamp


def _int(value: Any) -> int:
    return int(value.value if isinstance(value, EntityProperty) else value)


def _split_payload(text: str) -> dict[str, str]:
    if len(text) > _CHUNK_CHARS * _MAX_CHUNKS:
        # Keep the error record writable; say plainly that the payload was cut.
        head = text[: _CHUNK_CHARS * (_MAX_CHUNKS - 1)]
        text = json.dumps({"truncated": True, "original_chars": len(text), "head": head})
    return {
        f"payload{i:02d}": text[o : o + _CHUNK_CHARS] for i, o in enumerate(range(0, len(text), _CHUNK_CHARS))
    }


def _join_payload(entity: dict[str, Any]) -> Any:
    parts = sorted(k for k in entity if k.startswith("payload"))
    return json.loads("".join(entity[k] for k in parts)) if parts else None


class TableStateStore:
    """:class:`~shared.state.base.StateStore` on Azure Table Storage (``azure-data-tables`` aio)."""

    def __init__(self, service: TableServiceClient, *, prefix: str = "dualsync"):
        if not prefix.isalnum() or not prefix[:1].isalpha() or len(prefix) > 50:
            raise ValueError("table prefix must be letters and digits, starting with a letter, at most 50")
        self._service = service
        self.prefix = prefix
        self._ledger = service.get_table_client(f"{prefix}Ledger")
        self._checkpoints = service.get_table_client(f"{prefix}Checkpoints")
        self._errors = service.get_table_client(f"{prefix}Errors")
        self._map_states = service.get_table_client(f"{prefix}MapStates")
        self._opened = False

    @classmethod
    def from_connection_string(cls, connection_string: str, *, prefix: str = "dualsync") -> TableStateStore:
        return cls(TableServiceClient.from_connection_string(connection_string), prefix=prefix)

    @classmethod
    def from_endpoint(
        cls, endpoint: str, credential: Credential, *, prefix: str = "dualsync"
    ) -> TableStateStore:
        return cls(TableServiceClient(endpoint, credential=credential), prefix=prefix)

    @property
    def tables(self) -> list[TableClient]:
        return [self._ledger, self._checkpoints, self._errors, self._map_states]

    async def open(self) -> None:
        if self._opened:
            return
        for table in self.tables:
            with contextlib.suppress(ResourceExistsError):
                await self._service.create_table(table.table_name)
        self._opened = True

    async def close(self) -> None:
        for table in self.tables:
            await table.close()
        await self._service.close()

    async def __aenter__(self) -> TableStateStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def drop_tables(self) -> None:
        """Delete every table of this prefix (tests, and tearing down a sandbox)."""
        for table in self.tables:
            await self._service.delete_table(table.table_name)
        self._opened = False

    # --- conditional write shared by ledger and checkpoints ---------------------------------------
    async def _write(
        self,
        table: TableClient,
        entity: dict[str, Any],
        kind: str,
        name: str,
        expected_etag: str | None,
        only_if_absent: bool,
    ) -> str:
        try:
            if only_if_absent:
                meta = await table.create_entity(entity)
            elif expected_etag is not None:
                meta = await table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=expected_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                meta = await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except ResourceExistsError:
            raise ConcurrencyError(kind, name, "already exists") from None
        except ResourceModifiedError:
            raise ConcurrencyError(kind, name, "etag mismatch") from None
        except ResourceNotFoundError:
            raise ConcurrencyError(kind, name, "does not exist") from None
        return str(meta["etag"])

    async def _delete(
        self, table: TableClient, pk: str, rk: str, kind: str, name: str, expected_etag: str | None
    ) -> bool:
        try:
            entity = await table.get_entity(pk, rk, select=["PartitionKey"])
        except ResourceNotFoundError:
            if expected_etag is not None:
                raise ConcurrencyError(kind, name, "does not exist") from None
            return False
        etag = expected_etag or entity.metadata["etag"]
        try:
            await table.delete_entity(pk, rk, etag=etag, match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise ConcurrencyError(kind, name, "etag mismatch") from None
        return True

    # --- ledger -----------------------------------------------------------------------------------
    @staticmethod
    def _ledger_entry(e: Any) -> LedgerEntry:
        return LedgerEntry(
            map=e["map"],
            key=e["key"],
            source_version=_int(e["source_version"]),
            source_side=e["source_side"],
            target_hash=e.get("target_hash"),
            target_etag=e.get("target_etag"),
            updated_at=_dt(e["updated_at"]),
            etag=e.metadata["etag"],
        )

    async def get_ledger(self, map: str, key: str) -> LedgerEntry | None:
        try:
            return self._ledger_entry(await self._ledger.get_entity(encode_key(map), encode_key(key)))
        except ResourceNotFoundError:
            return None

    async def get_ledgers(self, map: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        # A filter holds at most 15 comparisons: the partition's and 14 row keys. Row keys are
        # encoded as get_ledger encodes them; the values go in as parameters, which the SDK quotes
        # (single quotes doubled). Found rows are returned under the key asked for, like get_ledger.
        by_row_key: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            by_row_key.setdefault(encode_key(key), []).append(key)
        row_keys = list(by_row_key)
        found: dict[str, LedgerEntry] = {}
        slots = asyncio.Semaphore(_READ_CONCURRENCY)

        async def read(group: list[str]) -> None:
            # the SDK substitutes parameters word by word: each @name stands alone between spaces
            either = " or ".join(f"RowKey eq @k{i}" for i in range(len(group)))
            parameters = {"pk": encode_key(map), **{f"k{i}": rk for i, rk in enumerate(group)}}
            async with slots:
                async for entity in self._ledger.query_entities(
                    f"PartitionKey eq @pk and ( {either} )", parameters=parameters
                ):
                    entry = self._ledger_entry(entity)
                    for key in by_row_key.get(entity["RowKey"], ()):
                        found[key] = entry

        groups = [row_keys[i : i + _KEYS_PER_QUERY] for i in range(0, len(row_keys), _KEYS_PER_QUERY)]
        await asyncio.gather(*(read(group) for group in groups))
        return found

    @staticmethod
    def _ledger_entity(entry: LedgerEntry) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": encode_key(entry.map),
            "RowKey": encode_key(entry.key),
            "map": entry.map,
            "key": entry.key,
            # Dataverse versionnumber exceeds Int32: always store as Int64.
            "source_version": EntityProperty(entry.source_version, EdmType.INT64),
            "source_side": str(entry.source_side),
            "updated_at": _ts(entry.updated_at),
        }
        if entry.target_hash is not None:
            entity["target_hash"] = entry.target_hash
        if entry.target_etag is not None:
            entity["target_etag"] = entry.target_etag
        return entity

    @staticmethod
    def _stored(entry: LedgerEntry, etag: str) -> LedgerEntry:
        return LedgerEntry(entry.map, entry.key, entry.source_version, str(entry.source_side), entry.target_hash,
                           entry.target_etag, entry.updated_at, etag)

    async def put_ledger(
        self, entry: LedgerEntry, *, expected_etag: str | None = None, only_if_absent: bool = False
    ) -> LedgerEntry:
        name = f"{entry.map}/{entry.key}"
        entity = self._ledger_entity(entry)
        etag = await self._write(self._ledger, entity, "ledger", name, expected_etag, only_if_absent)
        return self._stored(entry, etag)

    async def put_ledgers(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        # Entity group transactions: one partition (map), at most 100 operations, an entity at most
        # once per batch. A key seen again starts a new batch, so batches run in order per map.
        batches: dict[str, list[list[int]]] = {}
        for i, entry in enumerate(entries):
            runs = batches.setdefault(entry.map, [[]])
            run = runs[-1]
            if len(run) == _BATCH_SIZE or any(entries[j].key == entry.key for j in run):
                run = []
                runs.append(run)
            run.append(i)
        etags: list[str] = [""] * len(entries)

        async def write_map(runs: list[list[int]]) -> None:
            for run in runs:
                operations = [(TransactionOperation.UPSERT, self._ledger_entity(entries[i]),
                               {"mode": UpdateMode.REPLACE}) for i in run]
                try:
                    results = await self._ledger.submit_transaction(operations)
                except TableTransactionError as exc:
                    code = getattr(exc, "error_code", None)
                    raise StateStoreError(
                        f"ledger batch of {len(run)} for map {entries[run[0]].map!r} failed: {code}") from None
                for i, meta in zip(run, results, strict=True):
                    etags[i] = str(meta["etag"])

        await asyncio.gather(*(write_map(runs) for runs in batches.values()))
        return [self._stored(entry, etag) for entry, etag in zip(entries, etags, strict=True)]

    async def delete_ledger(self, map: str, key: str, *, expected_etag: str | None = None) -> bool:
        return await self._delete(
            self._ledger, encode_key(map), encode_key(key), "ledger", f"{map}/{key}", expected_etag
        )

    async def iter_ledger(self, map: str) -> AsyncIterator[LedgerEntry]:
        pages = self._ledger.query_entities("PartitionKey eq @pk", parameters={"pk": encode_key(map)})
        async for entity in pages:
            yield self._ledger_entry(entity)

    # --- checkpoints ------------------------------------------------------------------------------
    async def get_checkpoint(self, name: str) -> Checkpoint | None:
        try:
            e = await self._checkpoints.get_entity(_CHECKPOINT_PARTITION, encode_key(name))
        except ResourceNotFoundError:
            return None
        return Checkpoint(e["name"], json.loads(e["data"]), _dt(e["updated_at"]), e.metadata["etag"])

    async def put_checkpoint(
        self,
        name: str,
        data: dict[str, Any],
        *,
        expected_etag: str | None = None,
        only_if_absent: bool = False,
    ) -> Checkpoint:
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > _CHECKPOINT_CHARS:
            raise StateStoreError(
                f"checkpoint {name!r} is {len(text)} characters; the limit is {_CHECKPOINT_CHARS}"
            )
        now = utcnow()
        entity = {
            "PartitionKey": _CHECKPOINT_PARTITION,
            "RowKey": encode_key(name),
            "name": name,
            "data": text,
            "updated_at": _ts(now),
        }
        etag = await self._write(self._checkpoints, entity, "checkpoint", name, expected_etag, only_if_absent)
        return Checkpoint(name, json.loads(text), now, etag)

    async def delete_checkpoint(self, name: str, *, expected_etag: str | None = None) -> bool:
        return await self._delete(
            self._checkpoints, _CHECKPOINT_PARTITION, encode_key(name), "checkpoint", name, expected_etag
        )

    # --- error records ----------------------------------------------------------------------------
    @staticmethod
    def _error(e: Any) -> ErrorRecord:
        return ErrorRecord(
            id=e["RowKey"],
            map=e["map"],
            key=e["key"],
            classification=e["classification"],
            reason=e["reason"],
            description=e.get("description", ""),
            delivery_count=_int(e["delivery_count"]),
            payload=_join_payload(e),
            message_id=e.get("message_id"),
            session_id=e.get("session_id"),
            first_seen=_dt(e["first_seen"]),
            last_seen=_dt(e["last_seen"]),
            occurrences=_int(e["occurrences"]),
            status=ErrorStatus(e["status"]),
        )

    @staticmethod
    def _error_entity(rec: ErrorRecord) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": encode_key(rec.map),
            "RowKey": rec.id,
            "map": rec.map,
            "key": rec.key,
            "classification": rec.classification,
            "reason": rec.reason[:_CHUNK_CHARS],
            "description": rec.description[:_CHUNK_CHARS],
            "delivery_count": rec.delivery_count,
            "first_seen": _ts(rec.first_seen),
            "last_seen": _ts(rec.last_seen),
            "occurrences": rec.occurrences,
            "status": rec.status.value,
        }
        if rec.message_id is not None:
            entity["message_id"] = rec.message_id
        if rec.session_id is not None:
            entity["session_id"] = rec.session_id
        return entity | _split_payload(payload_json(rec.payload))

    async def record_error(self, report: ErrorReport, *, seen_at: datetime | None = None) -> ErrorRecord:
        when = seen_at or utcnow()
        pk, rk = encode_key(report.map), report.error_id
        # Read, merge, write back conditionally; a concurrent writer makes us read again.
        for _ in range(_UPSERT_ATTEMPTS):
            try:
                current = await self._errors.get_entity(pk, rk)
            except ResourceNotFoundError:
                current = None
            rec = merge_error(self._error(current) if current is not None else None, report, when)
            try:
                if current is None:
                    await self._errors.create_entity(self._error_entity(rec))
                else:
                    await self._errors.update_entity(
                        self._error_entity(rec),
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue
            return rec
        raise ConcurrencyError("error", rk, f"still contended after {_UPSERT_ATTEMPTS} attempts")

    @staticmethod
    def _filter(map: str | None, status: ErrorStatus | str | None) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if map is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = encode_key(map)
        if status is not None:
            clauses.append("status eq @status")
            params["status"] = ErrorStatus(status).value
        return " and ".join(clauses), params

    async def _query_errors(
        self, map: str | None, status: ErrorStatus | str | None, select: list[str] | None
    ):
        query, params = self._filter(map, status)
        if query:
            return self._errors.query_entities(query, parameters=params, select=select)
        return self._errors.list_entities(select=select)

    async def list_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN, limit: int = 100
    ) -> list[ErrorRecord]:
        # Table Storage sorts only by keys, so newest-first is done here.
        records = [self._error(e) async for e in await self._query_errors(map, status, None)]
        records.sort(key=lambda r: (-r.last_seen.timestamp(), r.id))
        return records[:limit]

    async def _find_error(self, error_id: str) -> Any | None:
        async for e in self._errors.query_entities("RowKey eq @rk", parameters={"rk": error_id}):
            return e
        return None

    async def get_error(self, error_id: str) -> ErrorRecord | None:
        e = await self._find_error(error_id)
        return self._error(e) if e is not None else None

    async def set_error_status(self, error_id: str, status: ErrorStatus | str) -> ErrorRecord:
        value = ErrorStatus(status)
        for _ in range(_UPSERT_ATTEMPTS):
            e = await self._find_error(error_id)
            if e is None:
                raise NotFoundError(f"no error record {error_id!r}")
            patch = {"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"], "status": value.value}
            try:
                await self._errors.update_entity(
                    patch,
                    mode=UpdateMode.MERGE,
                    etag=e.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            e["status"] = value.value
            return self._error(e)
        raise ConcurrencyError("error", error_id, f"still contended after {_UPSERT_ATTEMPTS} attempts")

    async def count_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN
    ) -> int:
        return sum([1 async for _ in await self._query_errors(map, status, ["RowKey"])])

    # --- map run state ----------------------------------------------------------------------------
    @staticmethod
    def _map_state(e: Any) -> MapState:
        return MapState(e["map"], RunState(e["state"]), _dt(e["since"]), e.get("reason", ""))

    async def get_map_state(self, map: str) -> MapState:
        try:
            return self._map_state(await self._map_states.get_entity(_MAP_STATE_PARTITION, encode_key(map)))
        except ResourceNotFoundError:
            return MapState(map)

    async def set_map_state(
        self, map: str, state: RunState | str, *, reason: str = "", since: datetime | None = None
    ) -> MapState:
        result = MapState(map, RunState(state), since or utcnow(), reason)
        await self._map_states.upsert_entity(
            {
                "PartitionKey": _MAP_STATE_PARTITION,
                "RowKey": encode_key(map),
                "map": map,
                "state": result.state.value,
                "since": _ts(result.since or utcnow()),
                "reason": reason,
            },
            mode=UpdateMode.REPLACE,
        )
        return result

    async def list_map_states(self) -> list[MapState]:
        pages = self._map_states.query_entities(
            "PartitionKey eq @pk", parameters={"pk": _MAP_STATE_PARTITION}
        )
        return sorted([self._map_state(e) async for e in pages], key=lambda s: s.map)
