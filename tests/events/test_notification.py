"""Message id / session id rules and the broker message round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.catalog.models import Side
from shared.events.errors import InvalidShape, MalformedJson
from shared.events.intake import accept_dataverse, accept_finance
from shared.events.notification import MAX_ID_LENGTH, ChangeNotification, Operation, Origin
from tests.events.samples import JSON_HEADERS, catalog, compiled, context_body, event_body, webhook_headers

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RID = UUID("6d81597f-0f9f-e711-8122-000d3a2ba2ea")


def dv(**kw: Any) -> ChangeNotification:
    base: dict[str, Any] = {"map": "projects", "source": Side.DATAVERSE, "record_id": RID, "operation": Operation.UPDATE,
                            "version": 7, "time": T0, "origin": Origin.WEBHOOK}
    return ChangeNotification(**{**base, **kw})


def fo(**kw: Any) -> ChangeNotification:
    base: dict[str, Any] = {"map": "customers", "source": Side.FINANCE, "key": '["USMF","C-1"]', "version": 100,
                            "time": T0, "origin": Origin.BUSINESS_EVENT}
    return ChangeNotification(**{**base, **kw})


def test_the_same_change_twice_has_the_same_message_id() -> None:
    first = accept_dataverse(context_body(), webhook_headers(), catalog()).messages()[0]
    again = accept_dataverse(context_body(), webhook_headers(), catalog()).messages()[0]
    assert first.message_id == again.message_id and first.session_id == again.session_id
    # A timer pull that finds the same version is the same change, whatever the origin or time of discovery.
    assert dv(origin=Origin.TIMER, time=T0 + timedelta(hours=1)).message_id == dv().message_id


def test_different_versions_have_different_message_ids_and_one_session() -> None:
    a, b = dv(version=7), dv(version=8)
    assert a.message_id != b.message_id
    assert a.session_id == b.session_id
    f1 = accept_finance(event_body(control=10), JSON_HEADERS, catalog(), compiled()).messages()[0]
    f2 = accept_finance(event_body(control=11, event_id=str(uuid4()).upper()), JSON_HEADERS, catalog(),
                        compiled()).messages()[0]
    assert f1.message_id != f2.message_id and f1.session_id == f2.session_id


def test_without_a_version_the_change_id_tells_changes_apart() -> None:
    op1, op2 = str(uuid4()), str(uuid4())
    assert dv(version=None, change_id=op1).message_id == dv(version=None, change_id=op1).message_id
    assert dv(version=None, change_id=op1).message_id != dv(version=None, change_id=op2).message_id
    assert dv(version=None, change_id=None, time=T0).message_id != dv(version=None, change_id=None,
                                                                      time=T0 + timedelta(seconds=1)).message_id
    # Finance sends upper-case EventIds; the id does not depend on case.
    assert dv(version=None, change_id=op1.upper()).message_id == dv(version=None, change_id=op1).message_id


def test_a_rescheduled_retry_is_not_swallowed_by_duplicate_detection() -> None:
    assert dv(attempt=1).message_id != dv().message_id != dv(attempt=2).message_id
    assert dv(attempt=1).session_id == dv().session_id


def test_different_records_and_maps_have_different_sessions() -> None:
    assert dv().session_id != dv(record_id=uuid4()).session_id
    assert dv().session_id != dv(map="projects_v2").session_id
    assert fo().session_id != fo(key='["USMF","C-2"]').session_id
    assert fo().session_id != fo(key='["GBSI","C-1"]').session_id


def test_dataverse_sessions_use_the_guid_even_when_the_key_is_known() -> None:
    assert dv(key='["USMF","P-1"]').session_id == dv().session_id
    assert str(RID) in dv().session_id


@pytest.mark.parametrize("key_length", [1, 50, 100, 200, 4000])
def test_ids_stay_within_128_characters(key_length: int) -> None:
    n = fo(map="m" * 64, key=json.dumps(["Ü" * key_length], ensure_ascii=False), attempt=12)
    for value in (n.message_id, n.session_id):
        assert len(value) <= MAX_ID_LENGTH
        assert value.startswith("m" * 10)
    longer = fo(map="m" * 64, key=json.dumps(["Ü" * key_length + "x"], ensure_ascii=False), attempt=12)
    assert longer.session_id != n.session_id and longer.message_id != n.message_id


def test_to_message_carries_the_routing_properties() -> None:
    msg = fo(correlation_id="corr-1", operation=Operation.DELETE).to_message()
    assert msg.content_type == "application/json" and msg.correlation_id == "corr-1"
    assert msg.application_properties == {"map": "customers", "source": "finance", "operation": "delete"}
    assert json.loads(msg.body)["key"] == '["USMF","C-1"]'


@pytest.mark.parametrize("n", [dv(), dv(version=None, change_id="x", tag="t", depth=2), fo(attempt=3)])
def test_message_round_trip(n: ChangeNotification) -> None:
    assert ChangeNotification.from_message(n.to_message().body) == n


def test_times_are_kept_in_utc() -> None:
    n = dv(time=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert n.time == T0 and n.time.tzinfo == UTC


@pytest.mark.parametrize(("body", "error"), [
    (b"{", MalformedJson),
    (b"[]", MalformedJson),
    (b'{"map": "projects"}', InvalidShape),
    (json.dumps({**json.loads(dv().to_message().body), "map": "../x"}).encode(), InvalidShape),
    (json.dumps({**json.loads(dv().to_message().body), "extra": 1}).encode(), InvalidShape),
    (json.dumps({**json.loads(fo().to_message().body), "key": None}).encode(), InvalidShape),
    (json.dumps({**json.loads(dv().to_message().body), "time": "2024-05-01T12:00:00"}).encode(), InvalidShape),
    (json.dumps({**json.loads(dv().to_message().body), "version": -1}).encode(), InvalidShape),
])
def test_from_message_rejects_bad_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        ChangeNotification.from_message(body)


def test_a_notification_must_name_its_record() -> None:
    with pytest.raises(ValueError, match="integration key"):
        fo(key=None)
    with pytest.raises(ValueError, match="record_id or key"):
        dv(record_id=None)
