"""Property-based: whatever arrives, the parsers answer with a result or a typed rejection — never
another exception — and a rejected request produces nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events.errors import Rejection
from shared.events.intake import accept_dataverse, accept_finance
from shared.events.notification import MAX_ID_LENGTH, ChangeNotification
from shared.events.result import IntakeResult
from tests.events.samples import (
    JSON_HEADERS,
    PROJECT_ID,
    business_event,
    catalog,
    compiled,
    context_text,
    webhook_headers,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a hostile or broken sender is likely to hit the parser with, beside random ones.
INTERESTING = st.sampled_from([
    PROJECT_ID, PROJECT_ID.upper(), "{" + PROJECT_ID + "}", "00000000-0000-0000-0000-000000000000",
    "/Date(1506409448000-0700)/", "/Date(-99999999999999)/", "/Date(999999999999999)/",
    "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
    "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
    "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Money:x",
    "msdyn_project", "account", "cdm_company", "contact", "../msdyn_project", "msdyn_project%00",
    "Create", "Update", "Delete", "Associate", "CustCustomerV3Entity", "CustomersV3", "LegalEntityEntity",
    "CustCustomerV3CreatedBusinessEvent", "BusinessEventsTestEndpointContract", "usmf", "\ud800", "\x00",
    "2022-12-30T13:51:15Z", "9999-12-31T23:59:59+14:00", 2**63, -(2**63) - 1, 2**31, 1e308, -0.0, True,
    "tag", "versionnumber", "Target", "x" * 300,
])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20) | INTERESTING)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12) | INTERESTING.filter(lambda v: isinstance(v, str)), children, max_size=4),
    max_leaves=25,
)


def check(call: Any) -> IntakeResult | None:
    """Run an intake call: a typed rejection (and no result), or a result whose messages are sound."""
    result = None
    try:
        result = call()
    except Rejection as rejection:
        assert 400 <= rejection.status < 500
        assert len(rejection.message) < 300
        return None
    assert isinstance(result, IntakeResult)
    assert result.notifications or result.ignored_reason
    for n in result.notifications:
        msg = n.to_message()
        assert len(msg.message_id) <= MAX_ID_LENGTH and len(msg.session_id) <= MAX_ID_LENGTH
        assert ChangeNotification.from_message(msg.body) == n
    return result


def dataverse(body: bytes) -> IntakeResult | None:
    return check(lambda: accept_dataverse(body, webhook_headers(), catalog()))


def finance(body: bytes) -> IntakeResult | None:
    return check(lambda: accept_finance(body, JSON_HEADERS, catalog(), compiled()))


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one to three members replaced, removed or added, anywhere in it."""
    data = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = None
        slot: Any = None
        node = data
        while isinstance(node, dict | list) and node and (parent is None or draw(st.integers(0, 3)) > 0):
            slot = draw(st.sampled_from(sorted(node))) if isinstance(node, dict) else draw(
                st.integers(0, len(node) - 1))
            parent, node = node, node[slot]
        if parent is None:
            return draw(JSON_VALUES)
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[slot] = draw(JSON_VALUES)
        elif action == "remove":
            del parent[slot]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12) | INTERESTING.filter(lambda v: isinstance(v, str)))] = draw(JSON_VALUES)
        else:
            parent.insert(slot, draw(JSON_VALUES))
    return data


@PROPS
@given(JSON_VALUES)
def test_dataverse_any_json_value(value: Any) -> None:
    dataverse(json.dumps(value).encode())


@PROPS
@given(JSON_VALUES)
def test_finance_any_json_value(value: Any) -> None:
    finance(json.dumps(value).encode())


@PROPS
@given(st.sampled_from(["Create", "Update", "Delete"]).flatmap(lambda m: mutated(json.loads(context_text(m)))))
def test_dataverse_mutated_sample(data: Any) -> None:
    dataverse(json.dumps(data).encode())


@PROPS
@given(st.sampled_from(["Create", "Update", "Delete"]).flatmap(lambda m: mutated(business_event(m))))
def test_finance_mutated_sample(data: Any) -> None:
    finance(json.dumps(data).encode())


@PROPS
@given(st.data())
def test_byte_level_mutations(data: st.DataObject) -> None:
    raw = bytearray(context_text(data.draw(st.sampled_from(["Create", "Update", "Delete"]))).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at: at + data.draw(st.integers(1, 40))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"[", b"{", b'"', b"\\", b"NaN"]))
    dataverse(bytes(raw))
    finance(bytes(raw))


@PROPS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    dataverse(body)
    finance(body)


def test_the_unmutated_samples_are_accepted() -> None:
    # The properties above would pass vacuously if the samples themselves were rejected.
    for message in ("Create", "Update", "Delete"):
        assert dataverse(context_text(message).encode()) is not None
        assert finance(json.dumps(business_event(message)).encode()) is not None
