"""Batched staging rows after the per-row cost cuts: a $batch shares one SQLite transaction with a
savepoint per part, inserts bind only the columns with a value, the 201 echo goes through orjson."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.finance import FinanceEmulator
from sandbox.finance.batch import run_batch
from sandbox.odata.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    parse_batch_response,
    write_batch_request,
)

JSON = {"Content-Type": "application/json"}
STAGING = "ProjCDSActualsImports"


def _row(n: int, **extra: object) -> dict[str, object]:
    return {"dataAreaId": "usmf", "ActualId": f"A-{n}", "ProjectId": "P-1", "TransactionClassification": "Time",
            "AccountingDate": "2024-03-01", "Quantity": 8.0, "UnitPrice": 100.0, "Amount": 800.0,
            "TransactionCurrencyId": "USD", "Description": f"Actual {n}", **extra}


def _post(n: int, **extra: object) -> BatchRequest:
    return BatchRequest("POST", f"/data/{STAGING}", JSON, json.dumps(_row(n, **extra)).encode())


def _seed(emu: FinanceEmulator) -> None:
    emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    emu.load_rows("ProjCDSProjects", [{"dataAreaId": "usmf", "ProjectID": "P-1", "ProjectName": "Alpha",
                                       "ProjectType": "TimeMaterial"}])


def _batch(client: httpx.Client, parts: list[BatchRequest | ChangeSet]) -> list[BatchResponse | list[BatchResponse]]:
    body, ctype = write_batch_request(parts)
    r = client.post("/$batch", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    return parse_batch_response(r.content, r.headers["content-type"])


def test_batched_creates_commit_alone_echo_the_row_and_raise_one_event_each(
        client: httpx.Client, emulator: FinanceEmulator) -> None:
    _seed(emulator)
    got: list[dict[str, object]] = []
    emulator.register_endpoint(publish=lambda body, props: got.append(json.loads(body)))
    items = _batch(client, [_post(0), _post(1, ProjectId="NOPE"), _post(2, Description="Café ü"),
                            ChangeSet([_post(3), _post(0)]), _post(4)])
    statuses = [p.status if isinstance(p, BatchResponse) else [q.status for q in p] for p in items]
    assert statuses == [201, 400, 201, [400], 201]  # bad relation; duplicate key fails its change set
    first = items[0]
    assert isinstance(first, BatchResponse)
    echo = json.loads(first.body)
    assert echo["ActualId"] == "A-0" and echo["Amount"] == 800.0 and echo["TaskId"] is None
    assert echo["@odata.etag"] == first.headers["etag"] and len(echo) == 2 + len(emulator.entity(STAGING).fields)
    accented = items[2]
    assert isinstance(accented, BatchResponse) and json.loads(accented.body)["Description"] == "Café ü"
    assert b"\\u00e9" in accented.body  # non-ASCII text written as json writes it
    rows = {r["ActualId"]: r for r in emulator.rows(STAGING)}
    assert sorted(rows) == ["A-0", "A-2", "A-4"]  # A-3 rolled back with its change set
    assert rows["A-0"]["TaskId"] is None and rows["A-0"]["Quantity"] == 8.0 and rows["A-0"]["ModifiedDateTime"]
    assert emulator.wait_for_events(5)
    assert sorted(e["ActualId"] for e in got) == ["A-0", "A-2", "A-4"]


def test_an_unexpected_failure_keeps_the_parts_before_it(emulator: FinanceEmulator,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(emulator)
    emulator.service.root_url = "http://test/data"
    real = emulator.service.handle

    def handle(req):  # type: ignore[no-untyped-def]
        if b'"A-1"' in req.body:
            raise RuntimeError("a bug")
        return real(req)

    monkeypatch.setattr(emulator.service, "handle", handle)
    body, ctype = write_batch_request([_post(0), _post(1), _post(2)])
    with pytest.raises(RuntimeError):
        run_batch(emulator.service, ctype, body)
    assert [r["ActualId"] for r in emulator.rows(STAGING)] == ["A-0"]
    assert not emulator.store.conn.in_transaction
    monkeypatch.undo()
    status, _, _, changes = run_batch(emulator.service, ctype, body)
    assert status == 200 and len(changes) == 2  # A-0 exists already; are created now


def test_inserts_of_different_shapes_store_nulls_for_what_they_leave_out(emulator: FinanceEmulator) -> None:
    _seed(emulator)
    ent = emulator.entity(STAGING)
    with emulator.store.transaction():
        emulator.store.insert(ent, {"dataAreaId": "usmf", "ActualId": "S-1", "Description": None})
        emulator.store.insert(ent, {"dataAreaId": "usmf", "ActualId": "S-2", "Description": "set", "Quantity": 0.0,
                                    "not a column": 1})
    rows = {r["ActualId"]: r for r in emulator.rows(STAGING)}
    assert rows["S-1"]["Description"] is None and rows["S-1"]["Quantity"] is None
    assert rows["S-2"]["Description"] == "set" and rows["S-2"]["Quantity"] == 0.0
    assert set(rows["S-2"]) == set(ent.fields)
