"""Live changes the sandbox makes after the initial sync, the way users would: over each system's own API.

Every catalog map gets one edit on each of its source sides (a text column the map copies), so each map's
live path runs. A few scenarios exercise what dual-write gets wrong:

* create and later delete a project in Dataverse (delete propagates to Finance);
* create a customer in Finance (a bidirectional map, so the write back must not echo);
* a child before its parent: a project task's notification arrives before its new project's;
* a bad value: a project name too long for Finance is dead-lettered, fixed at the source, then replayed.

The driver only changes source data and says what it did; convergence is judged by reconcile.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.catalog.models import Catalog, Copy, FieldMap, Side, TableMap
from shared.connectors.odata import entity_path

DATAVERSE_API = "api/data/v9.2"
FINANCE_API = "data"


@dataclass
class LiveLog:
    """What the driver did, for the report."""

    edits: dict[str, list[str]] = field(default_factory=dict)  # map -> ["dataverse:msdyn_description", ...]
    actions: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # map/side -> why no edit was possible

    def did(self, text: str) -> None:
        self.actions.append(text)


def _edited(value: str, n: int) -> str:
    # Keep the length: columns have maximum lengths the emulators enforce.
    tag = f"~{n:03d}"
    return value[: max(0, len(value) - len(tag))] + tag if len(value) >= len(tag) else tag


def editable_field(m: TableMap, source: Side, row: dict[str, Any]) -> str | None:
    """A plain-copy, non-key text column the map carries from ``source``: safe to edit."""
    keys = set(m.dataverse.keys) | {m.dataverse.primary_id} | set(m.finance.keys)
    for f in m.fields:
        if not _copies_from(m, f, source) or not isinstance(f.transform, Copy):
            continue
        column = f.dataverse if source == Side.DATAVERSE else f.finance
        other = f.finance if source == Side.DATAVERSE else f.dataverse
        if column is None or other is None or column in keys or other in keys:
            continue
        value = row.get(column)
        if isinstance(value, str) and value and not _looks_like_id(value):
            return column
    return None


def _copies_from(m: TableMap, f: FieldMap, source: Side) -> bool:
    target = Side.FINANCE if source == Side.DATAVERSE else Side.DATAVERSE
    return m.field_direction(f).flows_to(target)


def _looks_like_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class SourceWriteError(RuntimeError):
    """A live change the sandbox made was refused by the source system (a bug in the sandbox's data)."""


def _check(r: httpx.Response) -> None:
    if r.is_error:
        raise SourceWriteError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:500]}")


class LiveDriver:
    """Changes source rows over HTTP as a user would, so webhooks and business events fire."""

    def __init__(self, catalog: Catalog, dataverse_url: str, finance_url: str, token: str,
                 finance_key: Callable[[str], Sequence[str]] | None = None) -> None:
        self.catalog = catalog
        # the entity's own key (it can be wider than the map's integration key, e.g. Ledgers)
        self.finance_key = finance_key
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.dv = httpx.AsyncClient(base_url=f"{dataverse_url.rstrip('/')}/{DATAVERSE_API}/", headers=headers,
                                    timeout=30)
        self.fo = httpx.AsyncClient(base_url=f"{finance_url.rstrip('/')}/{FINANCE_API}/", headers=headers,
                                    timeout=30)
        self.log = LiveLog()
        self._n = 0

    async def close(self) -> None:
        await self.dv.aclose()
        await self.fo.aclose()

    # --- plain HTTP helpers -------------------------------------------------------------------------

    async def _dv_first(self, entity_set: str, filter: str | None = None, top: int = 1) -> list[dict[str, Any]]:
        params = {"$top": str(top)}
        if filter:
            params["$filter"] = filter
        r = await self.dv.get(entity_set, params=params)
        _check(r)
        return list(r.json()["value"])

    async def _fo_first(self, entity_set: str, top: int = 1) -> list[dict[str, Any]]:
        r = await self.fo.get(entity_set, params={"$top": str(top), "cross-company": "true"})
        _check(r)
        return list(r.json()["value"])

    async def dv_patch(self, entity_set: str, row_id: str, body: dict[str, Any]) -> None:
        r = await self.dv.patch(f"{entity_set}({row_id})", json=body, headers={"If-Match": "*"})
        _check(r)

    async def dv_create(self, entity_set: str, body: dict[str, Any]) -> None:
        r = await self.dv.post(entity_set, json=body)
        _check(r)

    async def dv_delete(self, entity_set: str, row_id: str) -> None:
        r = await self.dv.delete(f"{entity_set}({row_id})")
        _check(r)

    def _fo_path(self, m: TableMap, row: dict[str, Any]) -> str:
        fields = list(self.finance_key(m.finance.entity_set)) if self.finance_key else list(m.finance.keys)
        key = {k: row[k] for k in fields if k in row}
        if "dataAreaId" in row:  # company-specific entities are keyed by legal entity too
            key["dataAreaId"] = row["dataAreaId"]
        return entity_path(m.finance.entity_set, key) + "?cross-company=true"

    async def fo_patch(self, m: TableMap, row: dict[str, Any], body: dict[str, Any]) -> None:
        r = await self.fo.patch(self._fo_path(m, row), json=body)
        _check(r)

    # --- the changes ------------------------------------------------------------------------------

    async def edit_every_map(self) -> LiveLog:
        """One edit per map and source side (a copied text column), through each system's API."""
        for m in self.catalog:
            for source in m.sources:
                rows = (await self._dv_first(m.dataverse.entity_set, top=5) if source == Side.DATAVERSE
                        else await self._fo_first(m.finance.entity_set, top=5))
                target = next(((r, c) for r in rows if (c := editable_field(m, source, r))), None)
                if target is None:
                    self.log.skipped[f"{m.name}/{source.value}"] = (
                        "no source rows" if not rows else "no plain text column copied from this side")
                    continue
                row, column = target
                self._n += 1
                value = _edited(row[column], self._n)
                if source == Side.DATAVERSE:
                    await self.dv_patch(m.dataverse.entity_set, row[m.dataverse.primary_id], {column: value})
                else:
                    await self.fo_patch(m, row, {column: value})
                self.log.edits.setdefault(m.name, []).append(f"{source.value}:{column}")
        return self.log

    async def project_lifecycle(self, settle: Callable[[], Awaitable[object]]) -> dict[str, str]:
        """Create a project, let it sync, then delete it: the delete must reach Finance."""
        template = (await self._dv_first("msdyn_projects"))[0]
        project_id = str(uuid.uuid4())
        number = f"SBX-{project_id[:8].upper()}"
        await self.dv_create("msdyn_projects", {
            "msdyn_projectid": project_id, "msdyn_projectnumber": number, "msdyn_subject": "Sandbox project",
            **_binds(template, "msdyn_company", "cdm_companies"),
            **_binds(template, "msdyn_customer", "accounts"),
        })
        self.log.did(f"created project {number} in Dataverse")
        await settle()
        await self.dv_delete("msdyn_projects", project_id)
        self.log.did(f"deleted project {number} in Dataverse")
        return {"project": number}

    async def child_before_parent(self, hold: Callable[[], Awaitable[None]],
                                  release: Callable[[], Awaitable[None]]) -> dict[str, str]:
        """A new project and its task are created while notifications are held; then the task is
        touched first, so its notification reaches the sync before the project's."""
        template = (await self._dv_first("msdyn_projects"))[0]
        project_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
        number = f"SBX-{project_id[:8].upper()}"
        await hold()
        await self.dv_create("msdyn_projects", {
            "msdyn_projectid": project_id, "msdyn_projectnumber": number, "msdyn_subject": "Parent arrives late",
            **_binds(template, "msdyn_company", "cdm_companies"),
            **_binds(template, "msdyn_customer", "accounts"),
        })
        await self.dv_create("msdyn_projecttasks", {
            "msdyn_projecttaskid": task_id, "msdyn_subject": "Child arrives first", "msdyn_wbsid": "1",
            "msdyn_project@odata.bind": f"/msdyn_projects({project_id})",
            **_binds(template, "msdyn_company", "cdm_companies"),
        })
        await release()
        await self.dv_patch("msdyn_projecttasks", task_id, {"msdyn_subject": "Child arrives first (touched)"})
        self.log.did(f"task of project {number} notified before its project")
        return {"project_id": project_id, "task_id": task_id, "project": number}

    async def touch_project(self, project_id: str) -> None:
        await self.dv_patch("msdyn_projects", project_id, {"msdyn_description": "parent notified after its child"})
        self.log.did("project notified after its task")

    async def bad_value(self) -> dict[str, str]:
        """A project name longer than Finance's 60 characters: Finance refuses the write, so the change
        is dead-lettered as a validation error naming the field."""
        row = (await self._dv_first("msdyn_projects", top=3))[-1]
        await self.dv_patch("msdyn_projects", row["msdyn_projectid"], {"msdyn_subject": "X" * 120})
        self.log.did(f"gave project {row['msdyn_projectnumber']} a 120-character name (Finance allows 60)")
        return {"project_id": row["msdyn_projectid"], "subject": row["msdyn_subject"],
                "project": row["msdyn_projectnumber"]}


def _binds(template: dict[str, Any], lookup: str, entity_set: str) -> dict[str, str]:
    value = template.get(f"_{lookup}_value")
    return {f"{lookup}@odata.bind": f"/{entity_set}({value})"} if value else {}
