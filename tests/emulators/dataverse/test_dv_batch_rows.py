"""Batched rows after the per-row cost cuts: one SQLite transaction per $batch with a savepoint per
part must still commit or roll back each part alone, and report one change per written row."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from sandbox.dataverse import DataverseEmulator
from sandbox.dataverse.batch import run_batch
from sandbox.odata.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    parse_batch_response,
    write_batch_request,
)

ROOT = "/api/data/v9.2/"
JSON = {"Content-Type": "application/json"}
CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims/"


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _project(client: httpx.Client) -> str:
    r = client.post("msdyn_projects", json={"msdyn_subject": "Batched"})
    assert r.status_code == 204, r.text
    return r.headers["OData-EntityId"][-37:-1]


def _actual(rid: str, project: str, n: int, **extra: object) -> BatchRequest:
    body = {"msdyn_description": f"Actual {n}", "msdyn_quantity": n,
            "msdyn_project@odata.bind": f"/msdyn_projects({project})", **extra}
    return BatchRequest("PATCH", f"{ROOT}msdyn_actuals({rid})", JSON, json.dumps(body).encode())


def _post(client: httpx.Client, parts: list[BatchRequest | ChangeSet]) -> list[BatchResponse | list[BatchResponse]]:
    body, ctype = write_batch_request(parts)
    r = client.post("$batch", content=body, headers={"Content-Type": ctype, "Prefer": "odata.continue-on-error"})
    assert r.status_code == 200, r.text
    return parse_batch_response(r.content, r.headers["content-type"])


def test_batched_upserts_commit_alone_and_notify_one_change_per_row(client: httpx.Client,
                                                                   emu: DataverseEmulator) -> None:
    project = _project(client)
    published: list[dict[str, str]] = []
    emu.register_service_bus(lambda body, props: published.append(props), tables=["msdyn_actual"])
    ids = [str(uuid.uuid4()) for _ in range(5)]
    parts: list[BatchRequest | ChangeSet] = [_actual(rid, project, n) for n, rid in enumerate(ids)]
    parts[2] = _actual(ids[2], project, 2, msdyn_transactionclassification=1)  # not an option value: 400
    items = _post(client, parts)
    assert [p.status for p in items if isinstance(p, BatchResponse)] == [204, 204, 400, 204, 204]
    stored = {r["msdyn_actualid"]: r for r in emu.rows("msdyn_actuals")}
    assert sorted(stored) == sorted(ids[:2] + ids[3:])  # only the failing part rolled back
    assert all(r["_msdyn_project_value"] == project for r in stored.values())
    versions = [stored[rid]["versionnumber"] for rid in ids[:2] + ids[3:]]
    assert versions == sorted(versions) and len(set(versions)) == 4
    _wait_for(lambda: len(published) == 4)
    assert [p[CLAIMS + "RequestName"] for p in published] == ["Create"] * 4
    # the same rows again: updates, one change each, through the same savepoints
    _post(client, [_actual(rid, project, 10 + n) for n, rid in enumerate(ids[:2])])
    _wait_for(lambda: len(published) == 6)
    assert [p[CLAIMS + "RequestName"] for p in published[4:]] == ["Update", "Update"]
    assert {r["msdyn_actualid"]: r["msdyn_quantity"] for r in emu.rows("msdyn_actuals")}[ids[1]] == 11


def test_failing_change_set_in_a_batch_rolls_back_only_itself(client: httpx.Client, emu: DataverseEmulator) -> None:
    project = _project(client)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    items = _post(client, [
        _actual(ids[0], project, 0),
        ChangeSet([_actual(ids[1], project, 1), _actual(ids[2], project, 2, msdyn_quantity="x")]),
        _actual(ids[3], project, 3),
    ])
    first, failed, last = items
    assert isinstance(first, BatchResponse) and first.status == 204
    assert isinstance(failed, BatchResponse) and failed.status == 400
    assert isinstance(last, BatchResponse) and last.status == 204
    assert sorted(r["msdyn_actualid"] for r in emu.rows("msdyn_actuals")) == sorted([ids[0], ids[3]])


def test_an_unexpected_failure_keeps_the_parts_before_it(emu: DataverseEmulator,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one part answers 500 as before; the parts before it stay committed (they were
    separate transactions before the batch shared one) and the store is usable afterwards."""
    [project] = emu.load_rows("msdyn_projects", [{"msdyn_subject": "P"}])
    ids = [str(uuid.uuid4()) for _ in range(3)]
    real = emu.service.execute

    def execute(req, base_url):  # type: ignore[no-untyped-def]
        if ids[1] in req.path:
            raise RuntimeError("a bug")
        return real(req, base_url)

    monkeypatch.setattr(emu.service, "execute", execute)
    body, ctype = write_batch_request([_actual(rid, project, n) for n, rid in enumerate(ids)])
    with pytest.raises(RuntimeError):
        run_batch(emu.service, body, ctype, {"prefer": "odata.continue-on-error"}, {}, "http://test")
    assert [r["msdyn_actualid"] for r in emu.rows("msdyn_actuals")] == [ids[0]]
    assert not emu.store.conn.in_transaction and emu.store._depth == 0
    monkeypatch.undo()
    emu.load_rows("msdyn_actuals", [{"msdyn_description": "after"}])
    assert emu.count("msdyn_actuals") == 2


def test_lookup_queries_use_the_partial_indexes(emu: DataverseEmulator) -> None:
    """Lookup indexes leave empty lookups out; `=` comparisons (filters, expand, referential checks)
    must still be index searches, and an empty lookup still matches `IS NULL`."""
    [project] = emu.load_rows("msdyn_projects", [{"msdyn_subject": "P"}])
    emu.load_rows("msdyn_actuals", [{"msdyn_description": "with", "_msdyn_project_value": project},
                                    {"msdyn_description": "without"}])
    table = emu.schema.tables["msdyn_actual"]
    plan = emu.store.conn.execute('EXPLAIN QUERY PLAN SELECT * FROM "msdyn_actual" WHERE "msdyn_project" = ?',
                                  (project,)).fetchall()
    assert any("msdyn_actual__l__msdyn_project" in str(step) for step in plan), plan
    assert emu.store.find(table, {"msdyn_project": project})["msdyn_description"] == "with"  # type: ignore[index]
    assert emu.store.find(table, {"msdyn_project": None})["msdyn_description"] == "without"  # type: ignore[index]
