"""The OData service: one request in, one response out, independent of the HTTP server so that
``$batch`` runs its parts through the same code.

Writes validate like X++ does (mandatory fields, declared relations, duplicate keys) and return the
AxODataWriteException body; each committed write yields a :class:`Change` for business events.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlencode

from sandbox.finance.errors import (
    BadRequest,
    FinanceError,
    NoResource,
    NotFound,
    PreconditionFailed,
    WriteFailed,
)
from sandbox.finance.query import build_query
from sandbox.finance.schema import (
    COMPANY_FIELD,
    BodyValueError,
    Entity,
    Relation,
    Schema,
    parse_body_value,
)
from sandbox.finance.store import DuplicateKey, Store
from sandbox.odata import fastjson
from sandbox.odata.keys import parse_key, split_segment
from sandbox.odata.literals import EnumLiteral, ODataSyntaxError, format_literal

JSON_TYPE = "application/json; odata.metadata=minimal"
MAX_PAGE_SIZE = 10_000


@dataclass
class Change:
    """A committed create/update/delete, for business events."""

    entity: Entity
    operation: str  # Create | Update | Delete
    keys: dict[str, Any]
    control_number: int


def _prefers_minimal(prefer: str | None) -> bool:
    return prefer is not None and any(p.strip().lower() == "return=minimal" for p in prefer.split(","))


@dataclass
class ODataRequest:
    method: str
    path: str  # below the service root, e.g. "ProjCDSProjects(dataAreaId='usmf',ProjectID='P-1')"
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass
class ODataResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)


@lru_cache(maxsize=1024)  # a write renders its row's ETag twice (body and header)
def etag(rv: int) -> str:
    return 'W/"' + base64.b64encode(f"'1,{rv}'".encode()).decode() + '"'


@dataclass
class ServiceOptions:
    default_company: str = "usmf"
    page_size: int = MAX_PAGE_SIZE
    write_error_status: int = 400


class FinanceService:
    def __init__(self, schema: Schema, store: Store, options: ServiceOptions, root_url: str = "") -> None:
        self.schema, self.store, self.options = schema, store, options
        self.root_url = root_url  # e.g. http://127.0.0.1:1234/data ; set by the app on first request
        self.lower_sets = {k.lower(): v for k, v in schema.entities.items()}
        self._mandatory: dict[str, list[str]] = {}

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, req: ODataRequest) -> ODataResponse:
        try:
            return self._dispatch(req)
        except FinanceError as exc:
            return ODataResponse(exc.status, json.dumps(exc.body()).encode(), {"Content-Type": "application/json"})

    def _dispatch(self, req: ODataRequest) -> ODataResponse:
        segments = [unquote(s) for s in req.path.split("/") if s]
        if not segments:
            raise NoResource(self._no_resource(req))
        try:
            name, key_text = split_segment(segments[0])
        except ODataSyntaxError:
            raise NoResource(self._no_resource(req)) from None
        ent = self.schema.entity(name)
        if ent is None:
            raise NoResource(self._no_resource(req))
        rest = segments[1:]
        if key_text is None:
            if rest == ["$count"] and req.method == "GET":
                return self._count(ent, req)
            if rest:
                raise NoResource(self._no_resource(req))
            if req.method == "GET":
                return self._collection(ent, req)
            if req.method == "POST":
                return self._create(ent, req)
            raise FinanceError(f"The requested resource does not support http method '{req.method}'.", 405)
        key = self._key(ent, key_text)
        if rest:
            raise NoResource(self._no_resource(req))
        if req.method == "GET":
            return self._get(ent, key, req)
        if req.method in ("PATCH", "PUT", "MERGE"):
            return self._update(ent, key, req)
        if req.method == "DELETE":
            return self._delete(ent, key, req)
        raise FinanceError(f"The requested resource does not support http method '{req.method}'.", 405)

    def _no_resource(self, req: ODataRequest) -> str:
        return f"No HTTP resource was found that matches the request URI '{self.root_url}/{req.path}'."

    def _key(self, ent: Entity, text: str) -> dict[str, Any]:
        try:
            parsed = parse_key(text)
        except ODataSyntaxError as exc:
            raise BadRequest(f"Bad Request - Error in query syntax: {exc}") from None
        if parsed.is_single:
            if len(ent.key) != 1:
                raise BadRequest(f"The number of keys specified in the URI does not match number of key "
                                 f"properties for the resource '{self.schema.namespace}.{ent.name}'.")
            values = {ent.key[0]: parsed.single}
        else:
            values = dict(parsed.values)
        if set(values) != set(ent.key):
            raise BadRequest(f"The number of keys specified in the URI does not match number of key "
                             f"properties for the resource '{self.schema.namespace}.{ent.name}'.")
        out: dict[str, Any] = {}
        for k, v in values.items():
            f = ent.fields[k]
            if hasattr(v, "isoformat"):
                v = v.isoformat()
            if isinstance(v, EnumLiteral):
                v = v.member
            try:
                out[k] = parse_body_value(self.schema, f, v if not isinstance(v, int | float) or f.type != "String"
                                          else str(v))
            except BodyValueError as exc:
                raise BadRequest(str(exc)) from None
        return out

    def _visible(self, ent: Entity, key: dict[str, Any], req: ODataRequest) -> bool:
        """Without cross-company=true only the default company's rows are reachable, even by key."""
        if not ent.company or req.params.get("cross-company", "").lower() == "true":
            return True
        return str(key[COMPANY_FIELD]).lower() == self.options.default_company

    # --- reads ----------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> ODataResponse:
        headers = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
        if extra:
            headers.update(extra)
        return ODataResponse(status, json.dumps(payload, separators=(",", ":")).encode(), headers)

    def _render(self, ent: Entity, row: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(row["_rv"])}
        for name in select if select is not None else ent.fields:
            out[name] = row.get(name)
        return out

    def _get(self, ent: Entity, key: dict[str, Any], req: ODataRequest) -> ODataResponse:
        row = self.store.get(ent, key) if self._visible(ent, key, req) else None
        if row is None:
            raise NotFound(f"Resource not found for the segment '{ent.entity_set}'.")
        select = build_query(self.schema, ent, req.params, self.options.default_company).select
        payload = {"@odata.context": f"{self.root_url}/$metadata#{ent.entity_set}/$entity"}
        payload.update(self._render(ent, row, select))
        return self._json(200, payload, {"ETag": etag(row["_rv"])})

    def _count(self, ent: Entity, req: ODataRequest) -> ODataResponse:
        query = build_query(self.schema, ent, req.params, self.options.default_company)
        n = self.store.count(ent, query.where, query.params)
        return ODataResponse(200, str(n).encode(), {"Content-Type": "text/plain", "OData-Version": "4.0"})

    def _page_size(self, req: ODataRequest) -> int:
        size = min(self.options.page_size, MAX_PAGE_SIZE)
        for part in req.headers.get("prefer", "").split(","):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
                size = max(1, min(size, int(value)))
        return size

    def _collection(self, ent: Entity, req: ODataRequest) -> ODataResponse:
        query = build_query(self.schema, ent, req.params, self.options.default_company)
        page = self._page_size(req)
        want = page if query.top is None else min(page, query.top)
        rows = self.store.select(ent, query.where, query.params, query.order, want + 1, query.skip)
        more = len(rows) > want and (query.top is None or query.top > want)
        rows = rows[:want]
        payload: dict[str, Any] = {"@odata.context": f"{self.root_url}/$metadata#{ent.entity_set}"}
        if query.count:
            payload["@odata.count"] = self.store.count(ent, query.where, query.params)
        payload["value"] = [self._render(ent, r, query.select) for r in rows]
        if more:
            params = dict(req.params)
            params["$skip"] = str(query.skip + want)
            if query.top is not None:
                params["$top"] = str(query.top - want)
            payload["@odata.nextLink"] = (f"{self.root_url}/{ent.entity_set}?"
                                          f"{urlencode(params, safe='$,()', quote_via=quote)}")
        return self._json(200, payload)

    # --- writes ---------------------------------------------------------------------------------

    def _body(self, ent: Entity, req: ODataRequest) -> dict[str, Any]:
        try:
            data = fastjson.loads(req.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The request body is not valid JSON: an unexpected character was found.") from None
        if not isinstance(data, dict):
            raise BadRequest("A resource was expected in the request body; found a non-object JSON value.")
        values: dict[str, Any] = {}
        fields = ent.fields
        for name, value in data.items():
            f = fields.get(name)  # no field name holds "@", so annotations are never found here
            if f is None:
                if name.startswith("@") or "@odata." in name:
                    continue
                raise BadRequest(f"The property '{name}' does not exist on type '{self.schema.namespace}."
                                 f"{ent.name}'. Make sure to only use property names that are defined by the type.")
            if f.system:
                continue  # ModifiedDateTime is the service's
            # The commonest values need no conversion: the answer parse_body_value would give, without
            # its dispatch (this runs for every field written). Everything else, and every refusal, goes
            # through it.
            kind = type(value)
            plain_text = kind is str and f.type == "String" and name != COMPANY_FIELD and (
                f.length is None or len(value) <= f.length)
            if plain_text or (kind is float and f.type == "Real"):
                values[name] = value
            else:
                try:
                    values[name] = parse_body_value(self.schema, f, value)
                except BodyValueError as exc:
                    raise BadRequest(str(exc)) from None
        return values

    def _fail(self, ent: Entity, infolog: list[str]) -> WriteFailed:
        return WriteFailed(ent.aot_name, [*infolog, f"Error: validateWrite failed on data source "
                                                    f"'{ent.aot_name} ({ent.aot_name})'."],
                           self.options.write_error_status)

    def validate_row(self, ent: Entity, row: dict[str, Any], changed: set[str] | None = None) -> None:
        """Mandatory fields and declared relations (only relations touching ``changed`` when given)."""
        mandatory = self._mandatory.get(ent.entity_set)
        if mandatory is None:  # per entity, once: this runs for every write
            mandatory = self._mandatory[ent.entity_set] = [f.name for f in ent.data_fields if f.mandatory]
        missing = [m for m in mandatory if row.get(m) in (None, "")]
        if missing:
            raise self._fail(ent, [f"Warning: Field '{m}' must be filled in." for m in missing])
        problems: list[str] = []
        for rel in ent.relations:
            if changed is not None and not (changed & set(rel.fields)) and not (
                    rel.company_field and rel.company_field in changed):
                continue
            values: dict[str, Any] = {}
            for local, remote in rel.fields.items():
                value = row.get(local)
                if value is None or value == "":
                    break  # an empty reference is not checked
                values[remote] = value
            else:
                self._check_relation(ent, rel, row, values, problems)
        if problems:
            raise self._fail(ent, problems)

    def _check_relation(self, ent: Entity, rel: Relation, row: dict[str, Any], values: dict[str, Any],
                        problems: list[str]) -> None:
        """The related row must exist (in the row's company when the target is per company)."""
        target = self.schema.entities[rel.target]
        if target.company:
            company = row.get(rel.company_field or COMPANY_FIELD) or row.get(COMPANY_FIELD)
            values = {COMPANY_FIELD: str(company).lower(), **values}
        if not self.store.exists(target, values):
            local = ", ".join(rel.fields)
            shown = ", ".join(str(row.get(k)) for k in rel.fields)
            problems.append(f"Warning: The value '{shown}' in field '{local}' is not found in the related "
                            f"table '{target.label}'.")

    def _duplicate(self, ent: Entity, row: dict[str, Any]) -> WriteFailed:
        keys = ", ".join(ent.key)
        values = ", ".join(str(row.get(k)) for k in ent.key)
        return WriteFailed(ent.aot_name, [f"Info: Cannot create a record in {ent.label}. {keys}: {values}. "
                                          "The record already exists."], self.options.write_error_status)

    def _keys_of(self, ent: Entity, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row.get(k) for k in ent.key}

    def _create(self, ent: Entity, req: ODataRequest) -> ODataResponse:
        row = self._body(ent, req)
        if ent.company and not row.get(COMPANY_FIELD):
            row[COMPANY_FIELD] = self.options.default_company
        with self.store.single_write():
            self.validate_row(ent, row)
            try:
                stored = self.store.insert(ent, row)
            except DuplicateKey:
                raise self._duplicate(ent, row) from None
        tag = etag(stored["_rv"])
        location = f"{self.root_url}/{self.entity_path(ent, stored)}"
        if _prefers_minimal(req.headers.get("prefer")):
            # OData v4 (Prefer: return=minimal): 204, the new row's address in OData-EntityId
            resp = ODataResponse(204, b"", {"OData-Version": "4.0", "ETag": tag, "Location": location,
                                            "OData-EntityId": location, "Preference-Applied": "return=minimal"})
        else:
            # the created row echoed, as _render shapes it (context, etag, every field), built in one dict
            payload: dict[str, Any] = {"@odata.context": f"{self.root_url}/$metadata#{ent.entity_set}/$entity",
                                       "@odata.etag": tag}
            for name in ent.fields:
                payload[name] = stored.get(name)
            resp = ODataResponse(201, fastjson.dumps_row(payload), {
                "Content-Type": JSON_TYPE, "OData-Version": "4.0", "ETag": tag, "Location": location})
        resp.changes.append(Change(ent, "Create", self._keys_of(ent, stored), stored["_rv"]))
        return resp

    def entity_path(self, ent: Entity, row: dict[str, Any]) -> str:
        parts = ",".join(f"{k}={format_literal(row[k])}" for k in ent.key)
        return f"{ent.entity_set}({parts})"

    def _check_if_match(self, req: ODataRequest, row: dict[str, Any]) -> None:
        wanted = req.headers.get("if-match")
        if wanted is None or wanted.strip() == "*":
            return
        if etag(row["_rv"]) not in [w.strip() for w in wanted.split(",")]:
            raise PreconditionFailed("The ETag value in the If-Match header does not match the current version "
                                     "of the record: another user has changed it since it was read.", 412)

    def _existing(self, ent: Entity, key: dict[str, Any], req: ODataRequest) -> dict[str, Any]:
        row = self.store.get(ent, key) if self._visible(ent, key, req) else None
        if row is None:
            raise NotFound(f"Resource not found for the segment '{ent.entity_set}'.")
        return row

    def _update(self, ent: Entity, key: dict[str, Any], req: ODataRequest) -> ODataResponse:
        changes = self._body(ent, req)
        for k in ent.key:
            if k in changes and str(changes[k]).lower() != str(key[k]).lower():
                raise WriteFailed(ent.aot_name, [f"Error: The key field '{k}' cannot be changed."],
                                  self.options.write_error_status)
            changes.pop(k, None)
        with self.store.single_write():
            row = self._existing(ent, key, req)
            self._check_if_match(req, row)
            merged = {**row, **changes}
            self.validate_row(ent, merged, set(changes))
            written = self.store.update(ent, key, changes)
        resp = ODataResponse(204, b"", {"ETag": etag(written["_rv"]), "OData-Version": "4.0"})
        resp.changes.append(Change(ent, "Update", self._keys_of(ent, row), written["_rv"]))
        return resp

    def _delete(self, ent: Entity, key: dict[str, Any], req: ODataRequest) -> ODataResponse:
        with self.store.single_write():
            row = self._existing(ent, key, req)
            self._check_if_match(req, row)
            self.store.delete(ent, key)
        resp = ODataResponse(204, b"", {"OData-Version": "4.0"})
        resp.changes.append(Change(ent, "Delete", self._keys_of(ent, row), self.store.next_rv()))
        return resp

