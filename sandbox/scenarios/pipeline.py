"""What a scenario drives: both systems over their own HTTP APIs, the emulators' business flows, the
pipeline's settle, and the operator actions (error store, replay).

Scenarios change and read data only over HTTP, as users and Finance / Project Operations would; the
control objects are used only to hold Finance's business events while a fix is made (so the replay,
not the fix's own event, is what repairs the row).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from shared.connectors.odata import entity_path, filter_expr

DATAVERSE_API = "/api/data/v9.2/"


class ScenarioStepFailed(RuntimeError):
    """A system refused a write the scenario needed (the scenario stops; its checks say where)."""


def _ok(r: httpx.Response) -> httpx.Response:
    if r.is_error:
        raise ScenarioStepFailed(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}")
    return r


class DataverseApi:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30,
                                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, entity_set: str, row_id: str) -> dict[str, Any]:
        return dict(_ok(await self.http.get(f"{DATAVERSE_API}{entity_set}({row_id})")).json())

    async def query(self, entity_set: str, flt: str | None = None, top: int = 500) -> list[dict[str, Any]]:
        params = {"$top": str(top), **({"$filter": flt} if flt else {})}
        return list(_ok(await self.http.get(DATAVERSE_API + entity_set, params=params)).json()["value"])

    async def create(self, entity_set: str, body: dict[str, Any]) -> str:
        r = _ok(await self.http.post(DATAVERSE_API + entity_set, json=body))
        return r.headers.get("OData-EntityId", "").rsplit("(", 1)[-1].rstrip(")")

    async def patch(self, entity_set: str, row_id: str, body: dict[str, Any]) -> None:
        _ok(await self.http.patch(f"{DATAVERSE_API}{entity_set}({row_id})", json=body, headers={"If-Match": "*"}))

    async def try_create(self, entity_set: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(DATAVERSE_API + entity_set, json=body)

    async def run_flow(self, name: str) -> list[dict[str, Any]]:
        return list(_ok(await self.http.post("/_emulator/flows/run", json={"flow": name})).json()["value"])


class FinanceApi:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30, params={"cross-company": "true"},
                                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    async def close(self) -> None:
        await self.http.aclose()

    async def find(self, entity_set: str, key: dict[str, Any]) -> dict[str, Any] | None:
        r = await self.http.get("/data/" + entity_path(entity_set, key))
        return None if r.status_code == 404 else dict(_ok(r).json())

    async def query(self, entity_set: str, template: str | None = None, *values: Any) -> list[dict[str, Any]]:
        params = {"$filter": filter_expr(template, *values)} if template else {}
        return list(_ok(await self.http.get("/data/" + entity_set, params=params)).json()["value"])

    async def create(self, entity_set: str, body: dict[str, Any]) -> None:
        _ok(await self.http.post("/data/" + entity_set, json=body))

    async def patch(self, entity_set: str, key: dict[str, Any], body: dict[str, Any]) -> None:
        _ok(await self.http.patch("/data/" + entity_path(entity_set, key), json=body))

    async def run_flow(self, name: str) -> list[dict[str, Any]]:
        return list(_ok(await self.http.post("/_emulator/flows/run", json={"flow": name})).json()["value"])


@dataclass
class Pipeline:
    """One sandbox run's systems and the sync between them, as scenarios see it."""

    dataverse: DataverseApi
    finance: FinanceApi
    settle: Callable[[float], Awaitable[bool]]
    operations: Any  # shared.operations.Operations
    dv: Any = None  # the emulators' control objects
    fo: Any = None
    host: Any = None  # the dev host handle, to say what is still busy when the pipeline does not settle

    async def wait(self, horizon: float = 1.0) -> None:
        """Until both emulators sent everything and the host handled it."""
        if not await self.settle(horizon):
            raise ScenarioStepFailed(f"the pipeline did not settle in time: {self.busy(horizon)}")

    def busy(self, horizon: float = 1.0) -> str:
        parts = []
        if self.dv is not None:
            parts.append(f"Dataverse notifications pending: {self.dv.notifier.pending}")
        if self.fo is not None:
            parts.append(f"Finance business events pending: {self.fo.events.pending}")
        if self.host is not None:
            parts.append(f"host: {self.host.idle_report(horizon)}")
        return "; ".join(parts)

    async def open_errors(self, map_name: str, key_part: str) -> list[dict[str, Any]]:
        """Open errors of ``map_name`` whose key or payload mentions ``key_part``."""
        rows = await self.operations.errors(map_name, status="open", limit=500)
        return [e for e in rows if key_part.lower() in (str(e.get("key")) + str(e.get("payload"))).lower()]

    def subscribe_finance_events(self, entity_sets: list[str]) -> None:
        """Activate Finance business events only for the entities the maps read, as a Finance admin does.

        The flows write many rows no map covers (journal lines, account entries, number sequences); the
        host rightly answers their events with 422, and Finance retries each one, which would hold up
        every event behind them.
        """
        wanted = sorted({self.fo.entity(e).business_event_id(op) for e in entity_sets
                         for op in ("Create", "Update", "Delete")})
        for ep in self.hold_finance():
            self.fo.register_endpoint(url=ep["url"], legal_entities=ep.get("legal_entities"),
                                      business_event_ids=wanted)

    def hold_finance(self) -> list[dict[str, Any]]:
        """Stop Finance's business events to the host (as a deactivated endpoint would)."""
        held = [ep for ep in self.fo.endpoints() if ep.get("url")]
        for ep in held:
            self.fo.unregister_endpoint(ep["id"])
        return held

    def release_finance(self, held: list[dict[str, Any]]) -> None:
        for ep in held:
            self.fo.register_endpoint(url=ep["url"], legal_entities=ep.get("legal_entities"),
                                      business_event_ids=ep.get("business_event_ids"))

    async def close(self) -> None:
        await self.dataverse.close()
        await self.finance.close()
