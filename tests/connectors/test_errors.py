import datetime as dt

import pytest

from shared.connectors.errors import (
    Auth,
    Conflict,
    ConnectorError,
    DeltaTokenExpired,
    MessageUnsupported,
    NotFound,
    Precondition,
    Service,
    Throttled,
    Transient,
    Validation,
    classify,
    parse_retry_after,
)

DV, FO = Service.DATAVERSE, Service.FINANCE


def err(code="", message="m"):
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("service", "status", "body", "expected"),
    [
        (DV, 429, err("0x80072322"), Throttled),
        (DV, 400, err("0x80072326"), Throttled),  # service protection code wins over status
        (DV, 500, err(), Transient),
        (DV, 503, None, Transient),
        (DV, 408, None, Transient),
        (DV, 404, err("0x80040217"), NotFound),
        (DV, 412, err("0x80060882"), Precondition),
        (DV, 412, err("0x80040237"), Precondition),  # If-None-Match: * on an existing row
        (DV, 409, err(), Conflict),
        (DV, 500, err("0x80040333"), Conflict),  # duplicate detection reported as 500
        (DV, 400, err("0x80044331"), Validation),
        (DV, 400, err("0x80044352"), DeltaTokenExpired),
        (DV, 400, err("0x80040800"), MessageUnsupported),  # a table without the bulk messages
        (DV, 500, err("0x80040800"), MessageUnsupported),  # its HTTP status isn't documented
        (DV, 401, err(), Auth),
        (DV, 403, err(), Auth),
        (FO, 400, {"error": {"code": "", "message": "An error has occurred.", "innererror": {
            "message": "Write failed ... Infolog: Cannot create a record in Projects (ProjTable). The record already exists.",
        }}}, Conflict),
        (FO, 500, {"error": {"code": "", "message": "An error has occurred.", "innererror": {
            "message": "Write failed for table row. Infolog: Field must be filled in."}}}, Transient),
        (FO, 400, {"error": {"code": "", "message": "bad", "innererror": {"message": "Field must be filled in."}}},
         Validation),
        (FO, 404, {"Message": "No HTTP resource was found"}, NotFound),
        (DV, 418, None, Validation),
    ],
)
def test_table(service, status, body, expected):
    e = classify(service=service, method="PATCH", path="/api/data/v9.2/x", status=status, body=body)
    assert type(e) is expected
    assert e.status == status and e.service == service and e.method == "PATCH"


def test_error_carries_code_message_and_no_query():
    e = classify(service=DV, method="GET", path="/api/data/v9.2/accounts", status=404, body=err("0x80040217", "gone"))
    assert (e.code, e.message) == ("0x80040217", "gone")
    assert "accounts" in str(e) and "?" not in str(e)


def test_finance_inner_message_kept():
    e = classify(service=FO, method="POST", path="/data/X", status=400, body={"error": {
        "code": "", "message": "An error has occurred.", "innererror": {"message": "Field X must be filled in."}}})
    assert "Field X must be filled in." in e.message


def test_retryable_flags():
    assert Throttled.retryable and Transient.retryable
    for cls in (NotFound, Precondition, Conflict, Validation, Auth, ConnectorError):
        assert not cls.retryable


def test_retry_after_from_429():
    e = classify(service=DV, method="GET", path="/p", status=429, body=None, headers={"retry-after": "7"})
    assert isinstance(e, Throttled) and e.retry_after == 7.0


def test_parse_retry_after_forms():
    now = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:12 GMT", now=now) == 12.0
    assert parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
