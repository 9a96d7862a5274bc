"""The Dataverse Web API behaviour, independent of HTTP plumbing: ``execute(ApiRequest) -> ApiResponse``.

The Starlette app and the ``$batch`` handler both call :meth:`DataverseService.handle`, which runs one
request in a SQLite transaction (or a savepoint inside a change set) and reports committed changes
to ``on_commit`` for notifications.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.dataverse import errors
from sandbox.dataverse.errors import DataverseError
from sandbox.dataverse.schema import Column, Schema, Table
from sandbox.dataverse.store import Store, UniqueViolation, q
from sandbox.dataverse.values import literal_to_storage, now_text, to_guid, to_json, to_storage
from sandbox.odata import (
    EntityRef,
    Expand,
    Key,
    ODataSyntaxError,
    Property,
    SqlColumn,
    fastjson,
    parse_entity_ref,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_segment,
    parse_select,
    parse_top,
    to_sql,
)
from sandbox.odata.query import split_top_level

SERVICE_ROOT = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000
READ_ONLY = frozenset({"createdon", "modifiedon", "versionnumber"})
ANNOTATIONS_IGNORED = ("@odata.type", "@odata.etag", "@odata.id", "@odata.context")


@dataclass
class ApiRequest:
    method: str
    path: str  # below the service root, no leading '/', percent-decoded: "accounts(accountnumber='A')"
    query: dict[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    content_ids: dict[str, str] = field(default_factory=dict)  # "$1" -> "accounts(<guid>)" inside $batch


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Change:
    """A committed create/update/delete: what notifications are built from."""

    message: str  # "Create" | "Update" | "Delete"
    table: Table
    record_id: str
    row: dict[str, Any] | None  # stored post-image; None for Delete
    tag: str | None = None
    bypass_plugins: bool = False
    correlation_id: str = ""
    changed: tuple[str, ...] = ()  # columns the request set (the Target of Create/Update)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    h = {"content-type": "application/json; odata.metadata=minimal", "odata-version": "4.0"}
    if headers:
        h.update(headers)
    return ApiResponse(status, h, json.dumps(payload, separators=(",", ":")).encode())


def error_response(exc: DataverseError) -> ApiResponse:
    return json_response(exc.status, exc.body())


def parse_prefer(headers: Mapping[str, str]) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for part in headers.get("prefer", "").split(","):
        part = part.strip()
        if part:
            k, _, v = part.partition("=")
            prefs[k.strip().lower()] = v.strip().strip('"')
    return prefs


def _etag(version: Any) -> str:
    return f'W/"{version}"'


def _encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(data, dict):
            raise ValueError
        return data
    except ValueError:
        raise errors.BadRequest("The $skiptoken value is not valid.") from None


class _Unit:
    """``DataverseService.unit()``: a class rather than a generator, as it runs for every write."""

    __slots__ = ("frame", "service", "tx")

    def __init__(self, service: DataverseService) -> None:
        self.service = service
        self.frame: list[Change] = []
        self.tx = service.store.transaction()

    def __enter__(self) -> None:
        self.service._frames.append(self.frame)
        try:
            self.tx.__enter__()
        except BaseException:
            self.service._frames.pop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        frames = self.service._frames
        try:
            self.tx.__exit__(exc_type, exc, tb)
        finally:
            frames.pop()
        if exc_type is not None:
            return
        if frames:
            frames[-1].extend(self.frame)
        elif self.frame and self.service.on_commit is not None:
            self.service.on_commit(self.frame)


class DataverseService:
    def __init__(self, schema: Schema, store: Store, *, on_commit: Callable[[list[Change]], None] | None = None,
                 delta_token_max_changes: int | None = None) -> None:
        self.schema = schema
        self.store = store
        self.on_commit = on_commit
        self.delta_token_max_changes = delta_token_max_changes
        self._frames: list[list[Change]] = []
        self._plain: dict[str, dict[str, Column]] = {}
        self._required: dict[str, list[Column]] = {}
        self._refs: dict[str, EntityRef] = {}
        # Logical names of tables that refuse the bulk messages (CreateMultiple, UpsertMultiple), as
        # some real standard tables do; empty here: every emulated table takes them unless told.
        self.bulk_unsupported: set[str] = set()

    # --- transactions and change collection -------------------------------------------------------
    def unit(self) -> _Unit:
        """One atomic unit: a request, or a change set. Changes are reported once the outermost commits."""
        return _Unit(self)

    def _record(self, change: Change) -> None:
        if self._frames:
            self._frames[-1].append(change)

    # --- entry points ----------------------------------------------------------------------------
    def handle(self, req: ApiRequest, base_url: str) -> ApiResponse:
        """Execute one request atomically; client errors become the real error body, never a 500."""
        try:
            with self.store.lock, self.unit():
                return self.execute(req, base_url)
        except DataverseError as exc:
            return error_response(exc)
        except ODataSyntaxError as exc:
            return error_response(errors.BadRequest(str(exc)))

    def execute(self, req: ApiRequest, base_url: str) -> ApiResponse:
        root = base_url.rstrip("/") + SERVICE_ROOT
        path = req.path.strip("/")
        if path == "":
            if req.method != "GET":
                raise errors.MethodNotAllowed("The requested resource does not support http method "
                                              f"'{req.method}'.")
            return json_response(200, {"@odata.context": f"{root}/$metadata", "value": [
                {"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set}
                for t in self.schema.tables.values()]})
        segments = split_top_level(path, "/")
        name, key = parse_segment(segments[0])
        table = self.schema.table_for_set(name)
        if table is None:
            raise errors.ResourceNotFound(name)
        rest = segments[1:]
        if rest:
            if len(rest) == 1 and key is None and rest[0] == "$count" and req.method == "GET":
                return self._count(table, req)
            if len(rest) == 1 and key is None and req.method == "POST" and rest[0] in (
                    "Microsoft.Dynamics.CRM.UpsertMultiple", "Microsoft.Dynamics.CRM.CreateMultiple"):
                return self._bulk(table, req, root, rest[0].rsplit(".", 1)[1])
            raise errors.ResourceNotFound(rest[0])
        m = req.method
        if key is None:
            if m == "GET":
                return self._query(table, req, root)
            if m == "POST":
                return self._create(table, req, root)
        else:
            if m == "GET":
                return self._retrieve(table, key, req, root)
            if m in ("PATCH", "PUT"):
                return self._upsert(table, key, req, root)
            if m == "DELETE":
                return self._delete(table, key, req)
        raise errors.MethodNotAllowed(f"The requested resource does not support http method '{m}'.")

    # --- keys and references ---------------------------------------------------------------------
    def _key_values(self, table: Table, key: Key) -> tuple[str | None, dict[str, Any] | None]:
        """(record id, None) for a primary-key reference, or (None, {column: stored}) for an alternate key."""
        if key.is_single:
            try:
                return to_guid(key.single), None
            except DataverseError:
                raise errors.invalid_key(table.type_name) from None
        if set(key.values) == {table.primary_id}:
            try:
                return to_guid(key.values[table.primary_id]), None
            except DataverseError:
                raise errors.invalid_key(table.type_name) from None
        cols: dict[str, Any] = {}
        for kname, value in key.values.items():
            col = table.by_value_name.get(kname)
            if col is None:
                raise errors.invalid_key(table.type_name)
            try:
                cols[col.name] = literal_to_storage(table, col, value)
            except DataverseError:
                raise errors.invalid_key(table.type_name) from None
        if not any(set(kcols) == set(cols) for kcols in table.keys.values()):
            raise errors.invalid_key(table.type_name)
        return None, cols

    def _find(self, table: Table, record_id: str | None, key_cols: dict[str, Any] | None) -> dict[str, Any] | None:
        if record_id is not None:
            return self.store.get(table, record_id)
        assert key_cols is not None
        return self.store.find(table, key_cols)

    def _not_found(self, table: Table, record_id: str | None, key_cols: dict[str, Any] | None) -> DataverseError:
        if record_id is not None:
            return errors.not_found_by_id(table.logical_name, record_id)
        return errors.not_found_by_key(table.logical_name, key_cols or {})

    def _resolve_ref(self, ref: str, col: Column, table: Table, content_ids: dict[str, str]) -> str:
        """``@odata.bind`` value -> the target's id, or the real not-found error."""
        target = self.schema.tables[col.target or ""]
        ref = content_ids.get(ref, ref)
        try:
            parsed = self._refs.get(ref) or self._parse_ref(ref)
        except ODataSyntaxError:
            raise errors.BadRequest(f"The '{col.name}@odata.bind' value '{ref}' is not a valid entity "
                                    "reference URI.") from None
        if parsed.entity_set != target.entity_set:
            if self.schema.table_for_set(parsed.entity_set) is None:
                raise errors.ResourceNotFound(parsed.entity_set)
            raise errors.BadRequest(f"An entity of type '{parsed.entity_set}' cannot be bound to the navigation "
                                    f"property '{col.name}' of '{table.type_name}', which expects "
                                    f"'{target.type_name}'.")
        record_id, key_cols = self._key_values(target, parsed.key)
        if record_id is not None:
            if not self.store.exists(target, record_id):
                raise errors.not_found_by_id(target.logical_name, record_id)
            return record_id
        row = self._find(target, None, key_cols)
        if row is None:
            raise errors.not_found_by_key(target.logical_name, key_cols or {})
        return str(row[target.primary_id])

    def _parse_ref(self, ref: str) -> EntityRef:
        """Parsed once per distinct reference: rows of a batch mostly bind the same few records."""
        parsed = parse_entity_ref(ref, SERVICE_ROOT)
        if len(self._refs) >= 4096:
            self._refs.clear()
        self._refs[ref] = parsed
        return parsed

    # --- bodies ----------------------------------------------------------------------------------
    def _json_body(self, req: ApiRequest) -> dict[str, Any]:
        try:
            data = fastjson.loads(req.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.BadRequest(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise errors.BadRequest("The request body must be a JSON object.")
        return data

    def _parse_entity(self, table: Table, data: dict[str, Any], content_ids: dict[str, str]) -> dict[str, Any]:
        """Body properties -> {column: stored value}; validates names, types, lengths and option values."""
        values: dict[str, Any] = {}
        plain = self._plain_columns(table)
        for name, value in data.items():
            col = plain.get(name)
            if col is not None:  # the common case, decided by one lookup; the rest as before
                values[name] = to_storage(table, col, value)
                continue
            if name in ANNOTATIONS_IGNORED:
                continue
            if name.endswith("@odata.bind"):
                nav = name[: -len("@odata.bind")]
                col = table.columns.get(nav)
                if col is None or not col.is_lookup:
                    raise errors.BadRequest(f"An undeclared property '{nav}' which only has property "
                                            "annotations in the payload but no property value was found in "
                                            "the payload. In OData, only declared navigation properties and "
                                            "declared named streams can be represented as properties without "
                                            "values.")
                if value is None:
                    values[col.name] = None
                elif not isinstance(value, str):
                    raise errors.BadRequest(f"The value of '{name}' must be an entity reference URI string.")
                else:
                    values[col.name] = self._resolve_ref(value, col, table, content_ids)
                continue
            if "@" in name:
                continue  # other instance annotations are ignored by the service
            col = table.columns.get(name)
            if col is None:
                if name in table.by_value_name:
                    raise errors.BadRequest("CRM do not support direct update of Entity Reference properties, "
                                            "Use Navigation properties instead.")
                raise errors.unknown_property(name, table.type_name)
            if col.is_lookup:
                raise errors.BadRequest(f"Navigation property '{name}' must be set with '{name}@odata.bind'.")
            if col.name in READ_ONLY:
                continue  # system columns are set by the platform
            values[col.name] = to_storage(table, col, value)
        return values

    def _plain_columns(self, table: Table) -> dict[str, Column]:
        """Columns a body sets by their own name (not lookups, not system columns), per table, once."""
        plain = self._plain.get(table.logical_name)
        if plain is None:
            plain = {c.name: c for c in table.columns.values() if not c.is_lookup and c.name not in READ_ONLY}
            self._plain[table.logical_name] = plain
        return plain

    def _check_required(self, table: Table, row: dict[str, Any]) -> None:
        required = self._required.get(table.logical_name)
        if required is None:  # per table, once: this runs for every write
            required = self._required[table.logical_name] = [c for c in table.columns.values() if c.required]
        for col in required:
            if row.get(col.name) is None:
                raise errors.RequiredMissing(f"A validation error occurred. The value for the required column "
                                             f"'{col.name}' of the '{table.logical_name}' entity is missing.")

    # --- writes ----------------------------------------------------------------------------------
    def _insert(self, table: Table, values: dict[str, Any], req: ApiRequest) -> dict[str, Any]:
        row = dict(values)
        rid = row.get(table.primary_id) or str(uuid.uuid4())
        row[table.primary_id] = rid
        statecode = table.columns["statecode"]
        statuscode = table.columns["statuscode"]
        row.setdefault("statecode", statecode.options[0] if statecode.options else 0)
        row.setdefault("statuscode", statuscode.options[0] if statuscode.options else 1)
        self._check_required(table, row)
        now = now_text()
        row["createdon"] = row["modifiedon"] = now
        row["versionnumber"] = self.store.next_version()
        try:
            self.store.insert(table, row)
        except UniqueViolation as exc:
            raise self._duplicate(table, exc, row) from None
        full = dict.fromkeys(self.store.columns(table))  # every column, in table order
        full.update(row)
        self._record(self._change("Create", table, rid, full, req, (*values, table.primary_id)))
        return full

    def _update(self, table: Table, existing: dict[str, Any], values: dict[str, Any],
                req: ApiRequest) -> dict[str, Any]:
        rid = existing[table.primary_id]
        values.pop(table.primary_id, None)
        changes = dict(values)
        changes["modifiedon"] = now_text()
        changes["versionnumber"] = self.store.next_version()
        merged = {**existing, **changes}
        self._check_required(table, merged)
        try:
            self.store.update(table, rid, changes)
        except UniqueViolation as exc:
            raise self._duplicate(table, exc, merged) from None
        self._record(self._change("Update", table, rid, merged, req, tuple(values)))
        return merged

    def _duplicate(self, table: Table, exc: UniqueViolation, row: dict[str, Any]) -> DataverseError:
        if exc.key is None:
            return errors.DataverseError("Cannot insert duplicate key.", status=412, code="0x80040237")
        cols = table.keys[exc.key]
        shown = ", ".join(str(row.get(c)) for c in cols)
        return errors.DuplicateKey(f"Entity Key {exc.key} violated. A record with the same value for "
                                   f"{', '.join(cols)} ({shown}) already exists. "
                                   f"A duplicate record cannot be created.")

    def _change(self, message: str, table: Table, rid: str, row: dict[str, Any] | None,
                req: ApiRequest, changed: tuple[str, ...] = ()) -> Change:
        return Change(message, table, rid, row, tag=req.query.get("tag") or None,
                      bypass_plugins=req.headers.get("mscrm.bypasscustompluginexecution", "").lower() == "true",
                      correlation_id=req.headers.get("x-ms-correlation-request-id", ""), changed=changed)

    def _write_response(self, table: Table, row: dict[str, Any], created: bool, req: ApiRequest,
                        root: str) -> ApiResponse:
        entity_id = f"{root}/{table.entity_set}({row[table.primary_id]})"
        prefs = parse_prefer(req.headers)
        if prefs.get("return") == "representation":
            select = self._select_columns(table, req.query.get("$select"))
            body = {"@odata.context": f"{root}/$metadata#{table.entity_set}/$entity",
                    **self._serialize(table, row, select)}
            return json_response(201 if created else 200, body, {
                "odata-entityid": entity_id, "preference-applied": "return=representation",
                "etag": _etag(row["versionnumber"])})
        return ApiResponse(204, {"odata-version": "4.0", "odata-entityid": entity_id})

    def _create(self, table: Table, req: ApiRequest, root: str) -> ApiResponse:
        values = self._parse_entity(table, self._json_body(req), req.content_ids)
        if values.get(table.primary_id) and self.store.exists(table, values[table.primary_id]):
            raise errors.DataverseError("Cannot insert duplicate key.", status=412, code="0x80040237")
        row = self._insert(table, values, req)
        return self._write_response(table, row, True, req, root)

    def _upsert(self, table: Table, key: Key, req: ApiRequest, root: str) -> ApiResponse:
        record_id, key_cols = self._key_values(table, key)
        body = self._json_body(req)
        row, created = self.upsert_row(table, record_id, key_cols, body, req)
        return self._write_response(table, row, created, req, root)

    def upsert_row(self, table: Table, record_id: str | None, key_cols: dict[str, Any] | None,
                   body: dict[str, Any], req: ApiRequest) -> tuple[dict[str, Any], bool]:
        existing = self._find(table, record_id, key_cols)
        if_match = req.headers.get("if-match")
        if_none_match = req.headers.get("if-none-match")
        if if_match is not None:
            if existing is None:
                raise self._not_found(table, record_id, key_cols)
            if if_match.strip() != "*" and if_match.strip() != _etag(existing["versionnumber"]):
                raise errors.version_mismatch()
        if if_none_match is not None and if_none_match.strip() == "*" and existing is not None:
            raise errors.AlreadyExists()
        values = self._parse_entity(table, body, req.content_ids)
        if existing is not None:
            for k in (key_cols or {}):  # key values in the body are ignored on update
                values.pop(k, None)
            return self._update(table, existing, values, req), False
        if record_id is not None:
            if values.get(table.primary_id) not in (None, record_id):
                raise errors.BadRequest("The primary key in the body does not match the key in the request URI.")
            values[table.primary_id] = record_id
        for k, v in (key_cols or {}).items():
            values.setdefault(k, v)  # body values win over URL values on create
        return self._insert(table, values, req), True

    def _delete(self, table: Table, key: Key, req: ApiRequest) -> ApiResponse:
        record_id, key_cols = self._key_values(table, key)
        existing = self._find(table, record_id, key_cols)
        if existing is None:
            raise self._not_found(table, record_id, key_cols)
        if_match = req.headers.get("if-match")
        if if_match and if_match.strip() not in ("*", _etag(existing["versionnumber"])):
            raise errors.version_mismatch()
        rid = existing[table.primary_id]
        self.store.delete(table, rid, self.store.next_version())
        self._record(self._change("Delete", table, rid, None, req))
        return ApiResponse(204, {"odata-version": "4.0"})

    def _bulk(self, table: Table, req: ApiRequest, root: str, action: str) -> ApiResponse:
        if table.logical_name in self.bulk_unsupported:
            raise errors.MessageNotSupported(action, table.logical_name)
        data = self._json_body(req)
        targets = data.get("Targets")
        if not isinstance(targets, list) or not targets:
            raise errors.BadRequest(f"Request message '{action}' has unresolved parameters: 'Targets' must be a "
                                    "non-empty array of entities.")
        ids: list[str] = []
        with self.unit():  # any error rolls back the whole request (standard tables)
            for target in targets:
                if not isinstance(target, dict):
                    raise errors.BadRequest("Each item of 'Targets' must be an entity object.")
                otype = str(target.get("@odata.type", "")).lstrip("#")
                if otype != table.type_name:
                    raise errors.BadRequest(f"The '@odata.type' of each target must be '{table.type_name}' "
                                            f"(got '{otype}').")
                if action == "CreateMultiple":
                    values = self._parse_entity(table, target, req.content_ids)
                    if values.get(table.primary_id) and self.store.exists(table, values[table.primary_id]):
                        raise errors.DataverseError("Cannot insert duplicate key.", status=412, code="0x80040237")
                    ids.append(self._insert(table, values, req)[table.primary_id])
                    continue
                record_id, key_cols = self._target_key(table, target)
                body = {k: v for k, v in target.items() if k != "@odata.id"}
                plain = ApiRequest("PATCH", "", req.query, {k: v for k, v in req.headers.items()
                                                             if k not in ("if-match", "if-none-match")})
                self.upsert_row(table, record_id, key_cols, body, plain)
        if action == "CreateMultiple":
            return json_response(200, {"@odata.context": f"{root}/$metadata#Microsoft.Dynamics.CRM."
                                                         "CreateMultipleResponse", "Ids": ids})
        return ApiResponse(204, {"odata-version": "4.0"})

    def _target_key(self, table: Table, target: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        ref = target.get("@odata.id")
        if isinstance(ref, str):
            parsed = parse_entity_ref(ref, SERVICE_ROOT)
            if parsed.entity_set != table.entity_set:
                raise errors.BadRequest(f"'@odata.id' '{ref}' does not refer to '{table.entity_set}'.")
            return self._key_values(table, parsed.key)
        if target.get(table.primary_id):
            return to_guid(target[table.primary_id]), None
        for kcols in table.keys.values():
            if all(c in target for c in kcols):
                return None, {c: to_storage(table, table.columns[c], target[c]) for c in kcols}
        return str(uuid.uuid4()), None  # no key: a plain create

    # --- reads -----------------------------------------------------------------------------------
    def _select_columns(self, table: Table, text: str | None) -> list[Column] | None:
        if text is None:
            return None
        cols = []
        for name in parse_select(text):
            col = table.by_value_name.get(name)
            if col is None:
                raise errors.unknown_select(name, table.type_name)
            cols.append(col)
        return cols

    def _serialize(self, table: Table, row: dict[str, Any], select: list[Column] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": _etag(row["versionnumber"])}
        cols = select if select is not None else list(table.columns.values())
        for col in cols:
            out[col.value_name] = to_json(col, row.get(col.name))
        out[table.primary_id] = row[table.primary_id]  # always returned, as Dataverse does
        return out

    def _expansions(self, table: Table, text: str | None) -> list[tuple[Column, Table, list[Column] | None]]:
        if text is None:
            return []
        result = []
        for exp in parse_expand(text):
            result.append(self._expansion(table, exp))
        return result

    def _expansion(self, table: Table, exp: Expand) -> tuple[Column, Table, list[Column] | None]:
        col = table.columns.get(exp.navigation)
        if col is None or not col.is_lookup:
            raise errors.unknown_select(exp.navigation, table.type_name)
        if exp.options:
            raise errors.BadRequest(f"Only $select is supported inside $expand of single-valued navigation "
                                    f"property '{exp.navigation}'.")
        target = self.schema.tables[col.target or ""]
        return col, target, self._select_columns(target, ",".join(exp.select) if exp.select else None)

    def _with_expansions(self, table: Table, rows: list[dict[str, Any]], select: list[Column] | None,
                         expansions: list[tuple[Column, Table, list[Column] | None]]) -> list[dict[str, Any]]:
        out = [self._serialize(table, r, select) for r in rows]
        for col, target, tsel in expansions:
            ids = sorted({r[col.name] for r in rows if r.get(col.name)})
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start: start + 500]
                for t in self.store.select(target, f"{q(target.primary_id)} IN ({','.join('?' * len(chunk))})",
                                           chunk):
                    found[t[target.primary_id]] = t
            for row, item in zip(rows, out, strict=True):
                t = found.get(row.get(col.name) or "")
                item[col.name] = self._serialize(target, t, tsel) if t is not None else None
        return out

    def _retrieve(self, table: Table, key: Key, req: ApiRequest, root: str) -> ApiResponse:
        record_id, key_cols = self._key_values(table, key)
        select = self._select_columns(table, req.query.get("$select"))
        expansions = self._expansions(table, req.query.get("$expand"))
        row = self._find(table, record_id, key_cols)
        if row is None:
            raise self._not_found(table, record_id, key_cols)
        etag = _etag(row["versionnumber"])
        if not expansions and req.headers.get("if-none-match", "").strip() == etag:
            return ApiResponse(304, {"etag": etag, "odata-version": "4.0"})
        body = {"@odata.context": self._context(root, table, select) + "/$entity",
                **self._with_expansions(table, [row], select, expansions)[0]}
        return json_response(200, body, {"etag": etag})

    def _context(self, root: str, table: Table, select: list[Column] | None) -> str:
        if select is None:
            return f"{root}/$metadata#{table.entity_set}"
        return f"{root}/$metadata#{table.entity_set}({','.join(c.value_name for c in select)})"

    def _filter_sql(self, table: Table, text: str | None) -> tuple[str, list[Any]]:
        if text is None:
            return "", []

        def column(prop: Property) -> SqlColumn:
            if len(prop.path) != 1:
                raise errors.BadRequest(f"Filtering on the navigation path '{prop.name}' is not supported "
                                        "by the emulator.")
            col = table.by_value_name.get(prop.name)
            if col is None:
                raise errors.unknown_select(prop.name, table.type_name)
            return SqlColumn(q(col.name), lambda v: literal_to_storage(table, col, v))

        return to_sql(parse_filter(text), column)

    def _order_sql(self, table: Table, text: str | None) -> str:
        parts = []
        for ob in parse_orderby(text) if text else []:
            col = table.by_value_name.get(ob.name)
            if col is None:
                raise errors.unknown_select(ob.name, table.type_name)
            parts.append(f"{q(col.name)} {'DESC' if ob.descending else 'ASC'}")
        parts.append(q(table.primary_id))
        return ", ".join(parts)

    def _count(self, table: Table, req: ApiRequest) -> ApiResponse:
        where, params = self._filter_sql(table, req.query.get("$filter"))
        n = self.store.count(table, where, params)
        return ApiResponse(200, {"content-type": "text/plain", "odata-version": "4.0"}, str(n).encode())

    def _page_size(self, prefs: dict[str, str]) -> tuple[int, bool]:
        raw = prefs.get("odata.maxpagesize")
        if raw is None:
            return MAX_PAGE_SIZE, False
        try:
            size = int(raw)
        except ValueError:
            raise errors.BadRequest(f"The value '{raw}' of odata.maxpagesize is not a valid integer.") from None
        if size <= 0:
            raise errors.BadRequest(f"The value '{raw}' of odata.maxpagesize must be positive.")
        if size > MAX_PAGE_SIZE:
            return MAX_PAGE_SIZE, False  # larger requests are ignored, as the service does
        return size, True

    def _link(self, root: str, table: Table, query: dict[str, str], **extra: str) -> str:
        params = {k: v for k, v in query.items() if k not in ("$skiptoken", "$deltatoken")}
        params.update(extra)
        return f"{root}/{table.entity_set}?" + urlencode(params, quote_via=quote, safe="$(),'=/:!")

    def _query(self, table: Table, req: ApiRequest, root: str) -> ApiResponse:
        prefs = parse_prefer(req.headers)
        if "$deltatoken" in req.query or "odata.track-changes" in prefs:
            return self._delta(table, req, root, prefs)
        select = self._select_columns(table, req.query.get("$select"))
        expansions = self._expansions(table, req.query.get("$expand"))
        where, params = self._filter_sql(table, req.query.get("$filter"))
        order = self._order_sql(table, req.query.get("$orderby"))
        top = parse_top(req.query["$top"]) if "$top" in req.query else None
        size, applied = self._page_size(prefs)
        headers = {"preference-applied": f"odata.maxpagesize={size}"} if applied else {}
        offset = 0
        if "$skiptoken" in req.query:
            token = _decode_token(req.query["$skiptoken"])
            offset = int(token.get("o", 0))
        limit = min(top, size) if top is not None else size
        rows = self.store.select(table, where, params, order, limit + 1, offset)
        more = len(rows) > limit and top is None
        rows = rows[:limit]
        body: dict[str, Any] = {"@odata.context": self._context(root, table, select)}
        if req.query.get("$count", "").lower() == "true":
            body["@odata.count"] = self.store.count(table, where, params)
        body["value"] = self._with_expansions(table, rows, select, expansions)
        if more:
            body["@odata.nextLink"] = self._link(root, table, req.query,
                                                 **{"$skiptoken": _encode_token({"o": offset + limit})})
        return json_response(200, body, headers)

    # --- change tracking -------------------------------------------------------------------------
    def _delta(self, table: Table, req: ApiRequest, root: str, prefs: dict[str, str]) -> ApiResponse:
        for option in ("filter", "orderby", "expand", "top"):
            if f"${option}" in req.query:
                raise errors.track_changes_not_supported(option)
        select = self._select_columns(table, req.query.get("$select"))
        size, applied = self._page_size(prefs)
        headers = {"preference-applied": "odata.track-changes"
                   + (f",odata.maxpagesize={size}" if applied else "")}
        page = _decode_token(req.query["$skiptoken"]) if "$skiptoken" in req.query else {}
        if "$deltatoken" in req.query:
            since = self._since(req.query["$deltatoken"])
            context = self._context(root, table, select) + "/$delta"
        else:
            since = -1  # initial read: every row, no deletions
            context = self._context(root, table, select)
        until = int(page.get("u", self.store.version))
        phase, after = page.get("p", "r"), str(page.get("a", ""))
        value: list[dict[str, Any]] = []
        if phase == "r":
            rows = self.store.select(table, f"versionnumber > ? AND versionnumber <= ? AND {q(table.primary_id)} > ?",
                                     [since, until, after], q(table.primary_id), size + 1)
            value = [self._serialize(table, r, select) for r in rows[:size]]
            if len(rows) > size:
                return self._delta_page(table, req, root, context, value, headers,
                                        {"u": until, "p": "r", "a": rows[size - 1][table.primary_id]})
            phase, after = "d", ""
        if since >= 0:
            room = size - len(value)
            deleted = self.store.deleted_since(table, since, until, after, room + 1)
            for rid, _v in deleted[:room]:
                if not self.store.exists(table, rid):  # re-created rows are reported as changed instead
                    value.append({"@odata.context": f"{root}/$metadata#{table.entity_set}/$deletedEntity",
                                  "id": rid, "reason": "deleted"})
            if len(deleted) > room:
                last = deleted[room - 1][0] if room > 0 else after
                return self._delta_page(table, req, root, context, value, headers,
                                        {"u": until, "p": "d", "a": last})
        body = {"@odata.context": context, "value": value,
                "@odata.deltaLink": self._link(root, table, req.query, **{"$deltatoken": self._token(until)})}
        return json_response(200, body, headers)

    def _delta_page(self, table: Table, req: ApiRequest, root: str, context: str, value: list[dict[str, Any]],
                    headers: dict[str, str], state: dict[str, Any]) -> ApiResponse:
        link = self._link(root, table, req.query, **{"$skiptoken": _encode_token(state)})
        if "$deltatoken" in req.query:
            link += "&$deltatoken=" + quote(req.query["$deltatoken"], safe="")
        return json_response(200, {"@odata.context": context, "value": value, "@odata.nextLink": link}, headers)

    def _token(self, version: int) -> str:
        return f"{version}!{now_text()}"

    def _since(self, token: str) -> int:
        head = token.split("!", 1)[0]
        if not head.isdigit():
            raise errors.BadRequest(f"The $deltatoken value '{token}' is not valid.")
        since = int(head)
        if since > self.store.version:
            raise errors.BadRequest(f"The $deltatoken value '{token}' is not valid.")
        too_old = self.delta_token_max_changes is not None and \
            self.store.version - since > self.delta_token_max_changes
        if since < self.store.token_floor or too_old:
            raise errors.ChangeTrackingExpired()
        return since
