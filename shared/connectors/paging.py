"""Server-driven paging: follow ``@odata.nextLink`` only while it stays on the environment's origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from shared.connectors import jsoncodec
from shared.connectors.http import ServiceClient


async def follow_pages(
    http: ServiceClient, url: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Yield each page's JSON body, from ``url`` through every ``@odata.nextLink``.

    ``http.url()`` refuses (with :class:`ForeignLink`, logged) a next link on another origin: a
    tampered or misconfigured response must not send our bearer token elsewhere.
    """
    next_url: str | None = url
    while next_url is not None:
        response = await http.request("GET", next_url, headers=headers)
        page: dict[str, Any] = jsoncodec.loads(response.content)
        yield page
        next_url = page.get("@odata.nextLink")
