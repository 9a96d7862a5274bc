"""Create, read, update, delete over real HTTP: statuses, ETags, If-Match, validation and error shapes."""

from __future__ import annotations

import base64

import httpx

from sandbox.finance import FinanceEmulator
from sandbox.httpserver import RunningServer
from tests.emulators.finance.conftest import infolog, seed_basics

PROJECT = "ProjCDSProjects(dataAreaId='usmf',ProjectID='P-1')"
WRITE_EXC = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"


def test_auth_required_and_token_never_echoed(server: RunningServer, emulator: FinanceEmulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        r = httpx.get(server.url + "/data/ProjCDSProjects", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"error": {"code": "", "message": "Authorization has been denied for this request."}}
        assert "wrong" not in r.text and "test-token" not in r.text
    assert httpx.get(server.url + "/_emulator/stats").status_code == 401


def test_create_returns_201_with_entity_and_etag(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"ProjectID": "P-2", "ProjectName": "Gamma",
                                              "ProjectType": "Time", "CustomerAccount": "C-1",
                                              "StartDate": "2024-03-01"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["dataAreaId"] == "usmf"  # the default company
    assert body["ProjectType"] == "Time"
    assert body["StartDate"] == "2024-03-01T00:00:00Z"
    assert body["ModifiedDateTime"].endswith("Z")
    tag = body["@odata.etag"]
    assert tag.startswith('W/"') and tag == r.headers["ETag"]
    assert base64.b64decode(tag[3:-1]).decode().startswith("'1,")
    assert r.headers["Location"].endswith("/data/ProjCDSProjects(dataAreaId='usmf',ProjectID='P-2')")
    assert emulator.count("ProjCDSProjects") == 3


def test_create_with_return_minimal_answers_204_with_where_the_row_is(
        client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", headers={"Prefer": "odata.continue-on-error, return=minimal"},
                    json={"ProjectID": "P-3", "ProjectName": "Delta", "ProjectType": "Time"})
    assert r.status_code == 204 and r.content == b"", r.text
    assert r.headers["Preference-Applied"] == "return=minimal"
    assert r.headers["Location"].endswith("/data/ProjCDSProjects(dataAreaId='usmf',ProjectID='P-3')")
    assert r.headers["OData-EntityId"] == r.headers["Location"] and r.headers["ETag"].startswith('W/"')
    assert emulator.count("ProjCDSProjects") == 3
    refused = client.post("/ProjCDSProjects", headers={"Prefer": "return=minimal"},
                          json={"ProjectID": "P-3", "ProjectName": "Delta", "ProjectType": "Time"})
    assert refused.status_code >= 400 and "already exists" in refused.text  # errors keep their body


def test_duplicate_key_is_the_record_already_exists_error(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"ProjectID": "p-1", "ProjectName": "Again",
                                              "ProjectType": "Time"})
    assert r.status_code == 400
    msg = infolog(r)
    assert r.json()["error"]["innererror"]["type"] == WRITE_EXC
    assert msg.startswith("Write failed for table row of type 'ProjCDSProjectEntity'. Infolog: ")
    assert "Cannot create a record in Projects (ProjTable)" in msg and "The record already exists." in msg


def test_same_key_in_another_company_is_not_a_duplicate(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"dataAreaId": "GBSI", "ProjectID": "P-1", "ProjectName": "UK",
                                              "ProjectType": "Time"})
    assert r.status_code == 201
    assert r.json()["dataAreaId"] == "gbsi"  # Finance keeps company ids lower case


def test_patch_updates_returns_204_and_new_etag(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    before = client.get("/" + PROJECT).json()
    r = client.patch("/" + PROJECT, json={"ProjectName": "Renamed", "ProjectStatus": "InProcess"})
    assert r.status_code == 204 and r.content == b""
    after = client.get("/" + PROJECT).json()
    assert after["ProjectName"] == "Renamed" and after["ProjectStatus"] == "InProcess"
    assert after["@odata.etag"] != before["@odata.etag"] == before["@odata.etag"]
    assert after["ModifiedDateTime"] >= before["ModifiedDateTime"]


def test_patch_missing_row_is_404_not_upsert(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.patch("/ProjCDSProjects(dataAreaId='usmf',ProjectID='NOPE')", json={"ProjectName": "x"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Resource not found for the segment 'ProjCDSProjects'."
    assert emulator.count("ProjCDSProjects") == 2


def test_if_match_is_honoured(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    tag = client.get("/" + PROJECT).json()["@odata.etag"]
    assert client.patch("/" + PROJECT, json={"Description": "a"}, headers={"If-Match": tag}).status_code == 204
    stale = client.patch("/" + PROJECT, json={"Description": "b"}, headers={"If-Match": tag})
    assert stale.status_code == 412
    assert "If-Match" in stale.json()["error"]["innererror"]["message"]
    assert client.delete("/" + PROJECT, headers={"If-Match": tag}).status_code == 412
    assert client.patch("/" + PROJECT, json={"Description": "c"}, headers={"If-Match": "*"}).status_code == 204
    assert client.get("/" + PROJECT).json()["Description"] == "c"


def test_delete_then_404(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    assert client.delete("/" + PROJECT).status_code == 204
    assert client.get("/" + PROJECT).status_code == 404
    assert client.delete("/" + PROJECT).status_code == 404


def test_unknown_field_is_400_with_odata_message(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"ProjectID": "P-3", "ProjectName": "x", "ProjectType": "Time",
                                              "Colour": "red"})
    assert r.status_code == 400
    assert infolog(r) == ("The property 'Colour' does not exist on type 'Microsoft.Dynamics.DataEntities."
                          "ProjCDSProject'. Make sure to only use property names that are defined by the type.")
    assert client.patch("/" + PROJECT, json={"Colour": "red"}).status_code == 400


def test_missing_mandatory_field_is_validation_error(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"ProjectID": "P-3", "ProjectType": "Time"})
    assert r.status_code == 400
    msg = infolog(r)
    assert "Field 'ProjectName' must be filled in." in msg
    assert "validateWrite failed on data source 'ProjCDSProjectEntity" in msg
    assert client.patch("/" + PROJECT, json={"ProjectName": ""}).status_code == 400


def test_unknown_enum_symbol_and_wrong_types(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSProjects", json={"ProjectID": "P-3", "ProjectName": "x", "ProjectType": "Sideways"})
    assert r.status_code == 400
    assert "not a valid enumeration type constant" in infolog(r)
    for bad in ({"ProjectName": 5}, {"StartDate": "yesterday"}, {"ProjectName": "x" * 61}):
        assert client.patch("/" + PROJECT, json=bad).status_code == 400, bad
    ok = client.patch("/" + PROJECT, json={"ProjectType": "Microsoft.Dynamics.DataEntities.ProjType'Internal'"})
    assert ok.status_code == 204
    assert client.get("/" + PROJECT).json()["ProjectType"] == "Internal"


def test_missing_related_record_fails_validate_write(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.post("/ProjCDSTasks", json={"ProjectId": "P-404", "Task": "1", "Name": "Design"})
    assert r.status_code == 400
    msg = infolog(r)
    assert "The value 'P-404' in field 'ProjectId' is not found in the related table 'Projects (ProjTable)'." in msg
    assert "validateWrite failed on data source 'ProjCDSTaskEntity" in msg
    # the project exists only in gbsi: a task in usmf still fails (relations stay in the legal entity)
    assert client.post("/ProjCDSTasks", json={"ProjectId": "P-9", "Task": "1", "Name": "x"}).status_code == 400
    ok = client.post("/ProjCDSTasks", json={"dataAreaId": "gbsi", "ProjectId": "P-9", "Task": "1", "Name": "x"})
    assert ok.status_code == 201
    # an actual needs its category in that legal entity
    actual = {"ActualId": "A-1", "ProjectId": "P-1", "TransactionClassification": "Expense",
              "AccountingDate": "2024-01-31", "Quantity": 1, "Amount": 10.5, "TransactionCurrencyId": "USD",
              "TransactionCategory": "Hotel"}
    bad = client.post("/ProjCDSActualsImports", json=actual)
    assert bad.status_code == 400 and "Project category 'Hotel' does not exist in legal entity USMF" in infolog(bad)
    good = client.post("/ProjCDSActualsImports", json={**actual, "TransactionCategory": "Travel"})
    assert good.status_code == 201 and good.json()["Amount"] == 10.5
    # an update pointing a lookup at a missing row fails the same way
    assert client.patch("/" + PROJECT, json={"CustomerAccount": "C-404"}).status_code == 400


def test_key_fields_cannot_change(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    r = client.patch("/" + PROJECT, json={"ProjectID": "P-77"})
    assert r.status_code == 400 and "cannot be changed" in infolog(r)
    assert client.patch("/" + PROJECT, json={"ProjectID": "P-1", "Description": "same key"}).status_code == 204


def test_other_company_by_key_needs_cross_company(client: httpx.Client, emulator: FinanceEmulator) -> None:
    seed_basics(emulator)
    path = "/ProjCDSProjects(dataAreaId='gbsi',ProjectID='P-9')"
    assert client.get(path).status_code == 404
    assert client.get(path, params={"cross-company": "true"}).json()["ProjectName"] == "Beta"
    assert client.patch(path + "?cross-company=true", json={"Description": "d"}).status_code == 204


def test_shared_entities_have_no_company(client: httpx.Client, emulator: FinanceEmulator) -> None:
    r = client.post("/Currencies", json={"CurrencyCode": "EUR", "Name": "Euro"})
    assert r.status_code == 201 and "dataAreaId" not in r.json()
    assert client.get("/Currencies('EUR')").json()["Name"] == "Euro"
    assert client.get("/Currencies(CurrencyCode='eur')").status_code == 200  # keys compare case-insensitively
    r = client.post("/Currencies", json={"CurrencyCode": "CHF", "Name": "Franc", "dataAreaId": "usmf"})
    assert r.status_code == 400


def test_unknown_routes_and_bad_keys(client: httpx.Client, emulator: FinanceEmulator) -> None:
    r = client.get("/NoSuchEntities")
    assert r.status_code == 404 and r.json()["Message"].startswith("No HTTP resource was found")
    assert client.get("/ProjCDSProjects(ProjectID='P-1')").status_code == 400  # dataAreaId missing from key
    assert client.get("/ProjCDSProjects(dataAreaId='usmf',ProjectID=)").status_code == 400
    assert client.get("/ProjCDSProjects(dataAreaId='usmf',ProjectID='P-1')/Tasks").status_code == 404
    assert client.put("/ProjCDSProjects", json={}).status_code == 405
    r = client.post("/ProjCDSProjects", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert client.post("/ProjCDSProjects", json=[1, 2]).status_code == 400


def test_metadata_and_service_document(client: httpx.Client, emulator: FinanceEmulator) -> None:
    meta = client.get("/$metadata")
    assert meta.status_code == 200 and meta.headers["content-type"].startswith("application/xml")
    text = meta.text
    assert '<EntitySet Name="ProjCDSProjects" EntityType="Microsoft.Dynamics.DataEntities.ProjCDSProject" />' in text
    assert '<EnumType Name="NoYes">' in text
    assert '<PropertyRef Name="dataAreaId" /><PropertyRef Name="ProjectID" />' in text
    names = {e["name"] for e in client.get("/").json()["value"]}
    assert {"LegalEntities", "ProjCDSActualsImports", "ProjVendInvoiceLineExports", "CustomersV3"} <= names
