"""$batch (change sets, Content-ID, continue-on-error, limits) and UpsertMultiple / CreateMultiple."""

from __future__ import annotations

import json
from typing import Any

import httpx
from dvhelpers import assert_error

from sandbox.dataverse import DataverseEmulator
from sandbox.odata.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    parse_batch_response,
    write_batch_request,
)

ROOT = "/api/data/v9.2/"
JSON = {"Content-Type": "application/json; type=entry"}


def _post(client: httpx.Client, parts: list[Any], prefer: str | None = None) -> tuple[int, list[Any]]:
    body, ctype = write_batch_request(parts)
    headers = {"Content-Type": ctype}
    if prefer:
        headers["Prefer"] = prefer
    r = client.post("$batch", content=body, headers=headers)
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_"), r.text
    return r.status_code, parse_batch_response(r.content, r.headers["content-type"])


def _company(code: str, cid: str | None = None) -> BatchRequest:
    return BatchRequest("POST", ROOT + "cdm_companies", JSON, json.dumps({"cdm_companycode": code}).encode(), cid)


def test_change_set_with_content_id_references(client: httpx.Client, emu: DataverseEmulator) -> None:
    project = {"msdyn_subject": "P", "msdyn_company@odata.bind": "$1"}
    status, items = _post(client, [ChangeSet([
        _company("BAT1", "1"),
        BatchRequest("POST", ROOT + "msdyn_projects", JSON, json.dumps(project).encode(), "2"),
        BatchRequest("PATCH", "$1", JSON, json.dumps({"cdm_name": "via ref"}).encode(), "3"),
    ]), BatchRequest("GET", ROOT + "cdm_companies?$select=cdm_name", {})])
    assert status == 200
    cs, get = items
    assert isinstance(cs, list) and [p.status for p in cs] == [204, 204, 204]
    assert [p.content_id for p in cs] == ["1", "2", "3"]
    assert isinstance(get, BatchResponse) and get.status == 200
    assert json.loads(get.body)["value"][0]["cdm_name"] == "via ref"
    [row] = list(emu.rows("msdyn_projects"))
    assert row["_msdyn_company_value"] == next(emu.rows("cdm_companies"))["cdm_companyid"]


def test_failing_change_set_rolls_back_and_stops(client: httpx.Client, emu: DataverseEmulator) -> None:
    status, items = _post(client, [
        ChangeSet([_company("OK1", "1"), _company("WAYTOOLONG", "2")]),
        _company("AFTER"),
    ])
    assert status == 400 and len(items) == 1
    failed = items[0]
    assert isinstance(failed, BatchResponse) and failed.status == 400 and failed.content_id == "2"
    assert json.loads(failed.body)["error"]["code"] == "0x80044331"
    assert emu.count("cdm_companies") == 0  # OK1 rolled back, AFTER never ran


def test_continue_on_error_runs_every_part(client: httpx.Client, emu: DataverseEmulator) -> None:
    status, items = _post(client, [
        _company("A1"), _company("TOO-LONG-CODE"), ChangeSet([_company("B1"), _company("a1")]), _company("C1"),
    ], prefer="odata.continue-on-error")
    assert status == 200
    a, bad, cs, c = items
    assert isinstance(a, BatchResponse) and a.status == 204
    assert isinstance(bad, BatchResponse) and bad.status == 400
    assert isinstance(cs, BatchResponse) and cs.status == 412  # duplicate key fails the change set
    assert isinstance(c, BatchResponse) and c.status == 204
    assert sorted(r["cdm_companycode"] for r in emu.rows("cdm_companies")) == ["A1", "C1"]


def test_batch_limits_and_rules(client: httpx.Client) -> None:
    body, ctype = write_batch_request([_company(f"X{i}") for i in range(1001)])
    assert_error(client.post("$batch", content=body, headers={"Content-Type": ctype}), 400, None, "1000")
    body, ctype = write_batch_request([ChangeSet([BatchRequest("GET", ROOT + "cdm_companies", {})])])
    assert_error(client.post("$batch", content=body, headers={"Content-Type": ctype}), 400, None, "GET")
    body, ctype = write_batch_request([ChangeSet([BatchRequest("PATCH", "$9", JSON, b"{}", "1")])])
    r = client.post("$batch", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and b"Content-ID Reference: '$9' does not exist in the batch context." in r.content
    assert_error(client.post("$batch", content=b"x", headers={"Content-Type": "application/json"}), 400)


def test_batch_of_1000_upserts(client: httpx.Client, emu: DataverseEmulator) -> None:
    parts = [BatchRequest("PATCH", ROOT + f"cdm_workers(cdm_workernumber='W{i:04d}')", JSON,
                          json.dumps({"cdm_fullname": f"Worker {i}"}).encode()) for i in range(1000)]
    status, items = _post(client, [ChangeSet(parts)])
    assert status == 200 and len(items[0]) == 1000
    assert emu.count("cdm_workers") == 1000


def test_upsert_multiple_is_atomic(client: httpx.Client, emu: DataverseEmulator) -> None:
    t = "Microsoft.Dynamics.CRM.cdm_company"
    targets = [{"@odata.type": t, "@odata.id": "cdm_companies(cdm_companycode='UM1')", "cdm_name": "one"},
               {"@odata.type": t, "cdm_companycode": "UM2", "cdm_name": "two"}]
    r = client.post("cdm_companies/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": targets})
    assert r.status_code == 204, r.text
    targets[0]["cdm_name"] = "one again"
    r = client.post("cdm_companies/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        *targets, {"@odata.type": t, "cdm_companycode": "UM3", "cdm_name": "x" * 101}]})
    assert_error(r, 400, "0x80044331")
    names = {row["cdm_companycode"]: row["cdm_name"] for row in emu.rows("cdm_companies")}
    assert names == {"UM1": "one", "UM2": "two"}  # the whole request rolled back
    assert_error(client.post("cdm_companies/Microsoft.Dynamics.CRM.UpsertMultiple",
                             json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account"}]}), 400)
    r = client.post("cdm_companies/Microsoft.Dynamics.CRM.CreateMultiple",
                    json={"Targets": [{"@odata.type": t, "cdm_companycode": "CM1"}]})
    assert r.status_code == 200 and len(r.json()["Ids"]) == 1


def test_table_without_bulk_messages_refuses_them(client: httpx.Client, emu: DataverseEmulator) -> None:
    emu.service.bulk_unsupported.add("cdm_company")
    try:
        t = "Microsoft.Dynamics.CRM.cdm_company"
        for action in ("UpsertMultiple", "CreateMultiple"):
            r = client.post(f"cdm_companies/Microsoft.Dynamics.CRM.{action}",
                            json={"Targets": [{"@odata.type": t, "cdm_companycode": "NB1", "cdm_name": "n"}]})
            assert_error(r, 400, "0x80040800")
            assert f"The '{action}' method does not support entities of type 'cdm_company'" in r.json()["error"]["message"]
        assert emu.count("cdm_companies") == 0
    finally:
        emu.service.bulk_unsupported.clear()
