"""Malformed and hostile requests: the right status, a message that names the problem without
echoing the body or the secret, and nothing produced."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.events.errors import MAX_SHOWN, Rejection
from shared.events.intake import accept_dataverse, accept_finance
from tests.events.samples import (
    SECRET,
    business_event,
    catalog,
    compiled,
    context_body,
    context_text,
    webhook_headers,
)

MAX_BODY = 256 * 1024  # what a Dataverse webhook may send
HUGE = "x" * 40_000


def _ctx(mutate: Callable[[dict[str, Any]], None], message: str = "Update") -> bytes:
    data = json.loads(context_text(message))
    mutate(data)
    return json.dumps(data).encode()


def _target(data: dict[str, Any]) -> dict[str, Any]:
    return data["InputParameters"][0]["value"]


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return mutate


def _drop(member: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(member)


def _invalid_utf8() -> bytes:
    return context_body().replace(b"Alpine ski house", b"Alpine \xff\xfe house")


def _h() -> dict[str, str]:
    """Webhook headers with the right shared secret: every case but the secret ones passes that check."""
    return {**webhook_headers(), "x-dualsync-key": SECRET}


def _with_secret(value: str | None) -> dict[str, str]:
    headers = webhook_headers()
    if value is not None:
        headers["x-dualsync-key"] = value
    return headers


CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("not JSON", b"<xml>hello</xml>", _h(), 400, "not JSON"),
    ("empty body", b"", _h(), 400, "not JSON"),
    ("invalid UTF-8", _invalid_utf8(), _h(), 400, "UTF-8"),
    ("array at top", b"[1, 2]", _h(), 400, "RemoteExecutionContext JSON object"),
    ("number at top", b"42", _h(), 400, "RemoteExecutionContext JSON object"),
    ("missing PrimaryEntityName", _ctx(_drop("PrimaryEntityName")), _h(), 400, "PrimaryEntityName is missing"),
    ("PrimaryEntityId not a GUID", _ctx(_set(["PrimaryEntityId"], "1 OR 1=1")), _h(), 400,
     "PrimaryEntityId must be a GUID"),
    ("PrimaryEntityId a number", _ctx(_set(["PrimaryEntityId"], 12)), _h(), 400, "PrimaryEntityId must be a GUID"),
    ("unknown table", _ctx(lambda d: (d.update(PrimaryEntityName="contact"), _set(["LogicalName"], "contact")(_target(d)))),
     _h(), 422, "'contact'"),
    ("InputParameters not an array", _ctx(_set(["InputParameters"], {"Target": {}})), _h(), 400,
     "InputParameters must be an array of {key, value}"),
    ("Attributes as an object", _ctx(lambda d: _set(["Attributes"], {"msdyn_subject": "x"})(_target(d))),
     _h(), 400, "InputParameters[0].value.Attributes must be an array of {key, value}"),
    ("attribute without value", _ctx(lambda d: _target(d)["Attributes"].append({"key": "x"})), _h(), 400,
     "InputParameters[0].value.Attributes[8] must be a {key, value} object"),
    ("duplicated attribute", _ctx(lambda d: _target(d)["Attributes"].append({"key": "msdyn_subject", "value": "y"})),
     _h(), 400, "occurs more than once"),
    ("wrong __type on Target", _ctx(lambda d: _set(["__type"], "Money:http://schemas.microsoft.com/xrm/2011/Contracts")(_target(d))),
     _h(), 400, "InputParameters[0].value.__type must be Entity"),
    ("Entity as the Delete target", _ctx(lambda d: d.update(MessageName="Delete")), _h(), 400,
     "must be EntityReference"),
    ("__type not a text", _ctx(lambda d: _set(["__type"], ["Entity"])(_target(d))), _h(), 400,
     "__type must be a type name"),
    ("bad EntityReference id", _ctx(lambda d: _set(["Attributes", 3, "value", "Id"], "nope")(_target(d))),
     _h(), 400, "Attributes[3].value.Id must be a GUID"),
    ("OptionSetValue not a number", _ctx(lambda d: _set(["Attributes", 4, "value", "Value"], "0")(_target(d))),
     _h(), 400, "Attributes[4].value.Value must be a whole number"),
    ("Target of another table", _ctx(lambda d: _set(["LogicalName"], "account")(_target(d))), _h(), 400,
     "must be the PrimaryEntityName"),
    ("versionnumber as text", _ctx(lambda d: _set(["Attributes", 6, "value"], "12")(_target(d))), _h(), 400,
     "versionnumber must be a whole number"),
    ("bad OperationCreatedOn", _ctx(_set(["OperationCreatedOn"], "yesterday")), _h(), 400,
     "OperationCreatedOn must be a date"),
    ("negative Depth", _ctx(_set(["Depth"], -1)), _h(), 400, "Depth must be a whole number"),
    ("oversize body", context_body() + b" " * MAX_BODY, _h(), 413, "limit is 262144"),
    ("100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000, _h(), 400, "nests deeper than 64"),
    ("deep object in a member", _ctx(_set(["SharedVariables"], json.loads("[" * 70 + "]" * 70))), _h(), 400,
     "nests deeper"),
    ("missing shared secret", context_body(), _with_secret(None), 401, "missing or wrong x-dualsync-key"),
    ("wrong shared secret", context_body(), _with_secret("guess"), 401, "missing or wrong x-dualsync-key"),
    ("secret differing in the last byte", context_body(), _with_secret(SECRET[:-1] + "X"), 401, "missing or wrong"),
    ("wrong content type", context_body(), {**_h(), "Content-Type": "text/plain"}, 415, "not JSON"),
    ("no content type", context_body(), {k: v for k, v in _h().items() if k != "Content-Type"}, 415,
     "Content-Type is missing"),
    ("latin-1 charset", context_body(), {**_h(), "Content-Type": "application/json; charset=iso-8859-1"},
     415, "charset"),
    ("unsupported message", _ctx(_set(["MessageName"], "Associate")), _h(), 422, "'Associate' is not handled"),
    ("message name not a text", _ctx(_set(["MessageName"], None)), _h(), 400, "MessageName must be"),
    ("table with ../", _ctx(_set(["PrimaryEntityName"], "../msdyn_project")), _h(), 400,
     "PrimaryEntityName must be a table logical name"),
    ("table with %00", _ctx(_set(["PrimaryEntityName"], "msdyn_project%00")), _h(), 400,
     "PrimaryEntityName must be a table logical name"),
    ("table with a NUL", _ctx(_set(["PrimaryEntityName"], "msdyn_project\x00")), _h(), 400,
     "PrimaryEntityName must be a table logical name"),
    ("huge table name", _ctx(_set(["PrimaryEntityName"], HUGE)), _h(), 400, "PrimaryEntityName"),
    ("huge message name", _ctx(_set(["MessageName"], HUGE)), _h(), 422, "is not handled"),
    ("huge correlation id", _ctx(_set(["CorrelationId"], HUGE)), {**_h(), "x-ms-correlation-request-id": HUGE},
     400, "x-ms-correlation-request-id must be a short printable text"),
    ("huge tag", _ctx(_set(["SharedVariables"], [{"key": "tag", "value": HUGE}])), _h(), 400,
     "SharedVariables.tag"),
    ("duplicated JSON member", context_body().replace(b'"Depth": 1,', b'"Depth": 1, "Depth": 99,', 1),
     _h(), 400, "duplicated object member 'Depth'"),
    ("NaN literal", context_body().replace(b'"Depth": 1,', b'"Depth": NaN,', 1), _h(), 400, "NaN"),
    ("Infinity literal", context_body().replace(b'"Depth": 1,', b'"Depth": -Infinity,', 1), _h(), 400,
     "Infinity"),
    ("overflowing number", context_body().replace(b'"Depth": 1,', b'"Depth": 1e400,', 1), _h(), 400,
     "out of range"),
    ("4,400-digit integer", context_body().replace(b'"Depth": 1,', b'"Depth": ' + b"9" * 4400 + b",", 1),
     _h(), 400, "unreadable value"),
    ("lone surrogate in the tag", _ctx(_set(["SharedVariables"], [{"key": "tag", "value": "\ud800"}])),
     _h(), 400, "SharedVariables.tag"),
]


@pytest.mark.parametrize(("body", "headers", "status", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dataverse_rejections(body: bytes, headers: dict[str, str], status: int, needle: str) -> None:
    with pytest.raises(Rejection) as info:
        accept_dataverse(body, headers, catalog(), max_body_bytes=MAX_BODY, expected_secret=SECRET)
    rejection = info.value
    assert rejection.status == status, rejection.message
    assert needle in rejection.message
    # Short, and never the body or the secret.
    assert len(rejection.message) < 200
    assert SECRET not in rejection.message and SECRET not in json.dumps(rejection.as_dict())
    assert HUGE[: MAX_SHOWN + 1] not in rejection.message


def test_the_secret_check_says_the_same_whether_missing_or_wrong() -> None:
    messages = set()
    for headers in (_with_secret(None), _with_secret("guess"), _with_secret("")):
        with pytest.raises(Rejection) as info:
            accept_dataverse(context_body(), headers, catalog(), expected_secret=SECRET)
        messages.add(info.value.message)
    assert len(messages) == 1


def test_size_is_checked_before_anything_else() -> None:
    # Not JSON, no secret, wrong content type: the size still decides.
    with pytest.raises(Rejection) as info:
        accept_dataverse(b"\xff" * 2000, {"content-type": "text/plain"}, catalog(), max_body_bytes=1000,
                         expected_secret=SECRET)
    assert info.value.status == 413


def test_secret_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(Rejection) as info:
        accept_dataverse(b"not json", {"content-type": "text/plain"}, catalog(), expected_secret=SECRET)
    assert info.value.status == 401


def _event(**changes: Any) -> bytes:
    event = business_event()
    for name, value in changes.items():
        if value is None:
            event.pop(name)
        else:
            event[name] = value
    return json.dumps(event).encode()


FINANCE_CASES: list[tuple[str, bytes, int, str]] = [
    ("not JSON", b"BusinessEventId=x", 400, "not JSON"),
    ("array at top", b"[]", 400, "business event JSON object"),
    ("missing BusinessEventId", _event(BusinessEventId=None), 400, "BusinessEventId is missing"),
    ("missing ControlNumber", _event(ControlNumber=None), 400, "ControlNumber is missing"),
    ("ControlNumber as text", _event(ControlNumber="5637611083"), 400, "ControlNumber must be a whole number"),
    ("negative ControlNumber", _event(ControlNumber=-1), 400, "ControlNumber must be a whole number"),
    ("EventId not a GUID", _event(EventId="../../etc"), 400, "EventId must be a GUID"),
    ("unknown entity", _event(EntityName="SalesOrderHeaderV2Entity"), 422, "'SalesOrderHeaderV2Entity'"),
    ("entity name with path tricks", _event(EntityName="../CustomersV3"), 400, "EntityName must be"),
    ("event naming no entity", _event(EntityName=None, BusinessEventId="SalesInvoicePostedBusinessEvent"), 422,
     "names no entity"),
    ("bad operation", _event(Operation="Upsert"), 400, "Operation must be Create, Update or Delete"),
    ("missing key field", _event(CustomerAccount=None), 400, "Keys.CustomerAccount is missing"),
    ("key field an object", _event(CustomerAccount={"$ne": ""}), 400, "Keys.CustomerAccount must be a text"),
    ("key field huge", _event(CustomerAccount=HUGE), 400, "Keys.CustomerAccount"),
    ("Keys not an object", _event(Keys=["C-1"]), 400, "Keys must be an object"),
    ("bad ISO time", _event(EventTimeIso8601="soon"), 400, "EventTimeIso8601 must be an ISO 8601"),
    ("naive ISO time", _event(EventTimeIso8601="2022-12-30T13:51:15"), 400, "time zone"),
    ("NaN control number", _event().replace(b"5637611083", b"NaN"), 400, "NaN"),
]


@pytest.mark.parametrize(("body", "status", "needle"), [c[1:] for c in FINANCE_CASES], ids=[c[0] for c in FINANCE_CASES])
def test_finance_rejections(body: bytes, status: int, needle: str) -> None:
    with pytest.raises(Rejection) as info:
        accept_finance(body, {"content-type": "application/json"}, catalog(), compiled())
    assert info.value.status == status, info.value.message
    assert needle in info.value.message
    assert len(info.value.message) < 200 and HUGE[: MAX_SHOWN + 1] not in info.value.message


def test_rejection_bodies_name_the_member_not_the_payload() -> None:
    with pytest.raises(Rejection) as info:
        accept_dataverse(_ctx(_set(["PrimaryEntityId"], "A" * 1000)), webhook_headers(), catalog())
    shown = "'" + "A" * MAX_SHOWN + "...'"
    assert info.value.as_dict() == {
        "error": "invalid_shape", "status": 400, "path": "PrimaryEntityId",
        "message": f"PrimaryEntityId must be a GUID, got {shown}",
    }
