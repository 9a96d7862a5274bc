"""$batch: independent parts, atomic change sets rolled back on failure, the multipart response shape."""

from __future__ import annotations

import json

import httpx

from sandbox.finance import FinanceEmulator
from sandbox.odata.batch import BatchRequest, ChangeSet, parse_batch_response, write_batch_request
from tests.emulators.finance.conftest import seed_basics

JSON = {"Content-Type": "application/json"}


def _post(set_: str, body: dict, cid: str) -> BatchRequest:
    return BatchRequest("POST", set_, JSON, json.dumps(body).encode(), cid)


def _send(client: httpx.Client, parts: list) -> list:
    body, ctype = write_batch_request(parts)
    r = client.post("/$batch", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    return parse_batch_response(r.content, r.headers["content-type"])


def _task(i: int, project: str = "P-1") -> dict:
    return {"ProjectId": project, "Task": str(i), "Name": f"Task {i}"}


def test_changeset_commits_all_parts(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    items = _send(client, [ChangeSet([_post("ProjCDSTasks", _task(i), str(i)) for i in range(3)])])
    assert [r.status for r in items[0]] == [201, 201, 201]
    assert [r.content_id for r in items[0]] == ["0", "1", "2"]
    assert emulator.count("ProjCDSTasks") == 3


def test_failing_changeset_rolls_back_and_reports_its_error(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    good = ChangeSet([_post("ProjCDSTasks", _task(1), "1")])
    bad = ChangeSet([_post("ProjCDSTasks", _task(2), "2"), _post("ProjCDSTasks", _task(3, "P-404"), "3"),
                     _post("ProjCDSTasks", _task(4), "4")])
    get = BatchRequest("GET", "ProjCDSTasks?$select=Task", {}, b"", None)
    items = _send(client, [good, bad, get])
    assert [r.status for r in items[0]] == [201]
    failed = items[1]
    assert len(failed) == 1 and failed[0].status == 400 and failed[0].content_id == "3"
    assert "validateWrite failed" in json.loads(failed[0].body)["error"]["innererror"]["message"]
    assert sorted(t["Task"] for t in json.loads(items[2].body)["value"]) == ["1"]  # task 2 rolled back
    assert emulator.count("ProjCDSTasks") == 1


def test_parts_outside_changesets_are_independent(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    items = _send(client, [_post("ProjCDSTasks", _task(1), "1"), _post("ProjCDSTasks", _task(1), "2"),
                           BatchRequest("PATCH", "/data/ProjCDSProjects(dataAreaId='usmf',ProjectID='P-1')", JSON,
                                        b'{"Description":"via batch"}', "3"),
                           BatchRequest("DELETE", "ProjCDSProjects(dataAreaId='usmf',ProjectID='NOPE')", {}, b"",
                                        "4")])
    assert [r.status for r in items] == [201, 400, 204, 404]
    assert emulator.count("ProjCDSTasks") == 1


def test_large_changeset_and_malformed_batches(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    items = _send(client, [ChangeSet([_post("ProjCDSTasks", _task(i), str(i)) for i in range(500)])])
    assert len(items[0]) == 500 and {r.status for r in items[0]} == {201}
    assert client.post("/$batch", content=b"garbage", headers={"Content-Type": "text/plain"}).status_code == 400
    r = client.post("/$batch", content=b"--x\r\nnope", headers={"Content-Type": "multipart/mixed; boundary=x"})
    assert r.status_code == 400 and r.json()["error"]["innererror"]["message"]
