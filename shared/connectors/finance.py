"""Dynamics 365 Finance OData connector: rows by composite key (with ``dataAreaId``), cross-company
paged queries, upserts (PATCH, else POST; a duplicate after a race becomes PATCH), deletes and
batched writes through ``$batch``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.connectors import batch, batching, jsoncodec
from shared.connectors.auth import TokenProvider
from shared.connectors.errors import Conflict, ConnectorError, NotFound, Service, classify
from shared.connectors.http import ServiceClient
from shared.connectors.odata import entity_path, query_string
from shared.connectors.paging import follow_pages
from shared.connectors.writes import Delete, Upsert, Write, WriteResult
from shared.settings import Settings

DATA_PATH = "data/"
# A create's answer is never read (its key is ours), so ask Finance not to echo the new row (OData v4
# return=minimal: 204 instead of 201 with every field). A service that ignores it answers 201: same outcome.
NO_ECHO = {"Prefer": "return=minimal"}
CompositeKey = Mapping[str, Any]
Outcome = Literal["created", "updated"]


class FinanceConnector:
    service = Service.FINANCE

    def __init__(self, http: ServiceClient, *, default_company: str = "usmf", batch_size: int = 100) -> None:
        self.http = http
        self.default_company = default_company.lower()
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings, *, tokens: TokenProvider | None = None) -> FinanceConnector:
        http = ServiceClient.from_settings(settings, Service.FINANCE, settings.finance_url, DATA_PATH, tokens=tokens)
        return cls(http, default_company=settings.finance_default_company, batch_size=settings.batch_size)

    def _row_url(self, entity_set: str, key: CompositeKey) -> str:
        # Rows of another legal entity than the service user's are only visible cross-company.
        company = str(key.get("dataAreaId", self.default_company)).lower()
        suffix = "" if company == self.default_company else "?cross-company=true"
        return entity_path(entity_set, key) + suffix

    async def get(self, entity_set: str, key: CompositeKey, *, select: Sequence[str] | None = None) -> dict[str, Any]:
        """The row at the composite ``key`` (include ``dataAreaId`` for company-specific entities)."""
        url = self._row_url(entity_set, key)
        if select:
            url += ("&" if "?" in url else "?") + query_string({"$select": ",".join(select)})
        response = await self.http.request("GET", url)
        row: dict[str, Any] = jsoncodec.loads(response.content)
        return row

    async def query(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | None = None,
        cross_company: bool = True,
        page_size: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of rows (server-driven paging), across all legal entities unless told otherwise."""
        qs = query_string({
            "$select": ",".join(select) if select else None,
            "$filter": filter,
            "$orderby": orderby,
            "cross-company": "true" if cross_company else None,
        })
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        async for page in follow_pages(self.http, entity_set + (f"?{qs}" if qs else ""), headers):
            yield page.get("value", [])

    async def upsert(self, entity_set: str, key: CompositeKey, row: Mapping[str, Any]) -> Outcome:
        """Update the row at ``key``, or create it. Finance has no PATCH-upsert, so: PATCH; on 404
        POST (key fields in the body); if that POST loses a race to another writer (duplicate),
        PATCH again."""
        url = self._row_url(entity_set, key)
        try:
            await self.http.request("PATCH", url, json_body=dict(row))
            return "updated"
        except NotFound:
            pass
        try:
            await self.http.request("POST", entity_set, json_body={**row, **key}, headers=NO_ECHO)
            return "created"
        except Conflict:
            await self.http.request("PATCH", url, json_body=dict(row))
            return "updated"

    async def delete(self, entity_set: str, key: CompositeKey, *, missing_ok: bool = False) -> bool:
        try:
            await self.http.request("DELETE", self._row_url(entity_set, key))
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    def _part_error(self, write: Write, part: batch.Part, response: batch.PartResponse) -> ConnectorError:
        return classify(
            service=self.service, method=part.method, path=urlsplit(part.url).path,
            status=response.status, body=response.body, headers=response.headers,
        )

    async def write_batch(
        self, entity_set: str, writes: Sequence[Write], *, expect: Literal["existing", "new"] = "existing"
    ) -> list[WriteResult]:
        """Many writes through ``$batch`` (chunked, concurrent, one result per write, in order).

        ``expect="existing"``: upserts go as PATCH; rows that answer 404 are created with POST in a
        second round, and a duplicate there (another writer won the race) is PATCHed once more.
        ``expect="new"`` (initial sync): POST first, PATCH only the duplicates — half the requests
        when the rows are indeed new, the same result either way.
        """
        root = self.http.service_root

        def patch(w: Write) -> batch.Part:
            url = root + self._row_url(entity_set, w.key)  # type: ignore[arg-type]
            if isinstance(w, Delete):
                return batch.Part("DELETE", url)
            return batch.Part("PATCH", url, dict(w.row))

        def post(w: Write) -> batch.Part:
            if isinstance(w, Upsert):
                return batch.Part("POST", root + entity_set, {**w.row, **w.key}, NO_ECHO)  # type: ignore[dict-item]
            return patch(w)

        async def run(some: Sequence[Write], part: Callable[[Write], batch.Part]) -> list[WriteResult]:
            return await batching.write_batches(
                self.http, some, part, batch_size=self.batch_size, part_error=self._part_error
            )

        async def again(results: list[WriteResult], indices: list[int], part: Callable[[Write], batch.Part]) -> None:
            for i, r in zip(indices, await run([writes[i] for i in indices], part), strict=True):
                results[i] = r

        def failed_upserts(results: list[WriteResult], error: type[ConnectorError], among: Sequence[int]) -> list[int]:
            return [i for i in among if isinstance(results[i].error, error) and isinstance(results[i].write, Upsert)]

        everything = range(len(writes))
        if expect == "new":  # POST first, PATCH only the duplicates
            results = await run(writes, post)
            await again(results, failed_upserts(results, Conflict, everything), patch)
            return results
        results = await run(writes, patch)
        missing = failed_upserts(results, NotFound, everything)
        if missing:
            await again(results, missing, post)
            await again(results, failed_upserts(results, Conflict, missing), patch)  # lost a race: update
        return results
