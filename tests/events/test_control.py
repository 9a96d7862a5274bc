"""ControlNumber tracking against a real SQLite state store: stale, duplicate, concurrent, release."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.events.control import Claim, ControlNumberTracker, ControlStamp, Stale
from shared.events.intake import accept_finance
from shared.events.publish import deliver
from shared.state.sqlite import SqliteStateStore
from shared.transport.base import Transport
from tests.events.samples import JSON_HEADERS, business_event, catalog, compiled

TOPIC = "changes"


@pytest.fixture
async def store(tmp_path):
    s = SqliteStateStore(tmp_path / "state.sqlite")
    await s.open()
    yield s
    await s.close()


def stamp(control: int, key: str = '["USMF","C-1"]') -> ControlStamp:
    return ControlStamp("CustCustomerV3Entity", "USMF", key, control)


def event_stamp(**kw) -> ControlStamp:
    result = accept_finance(json.dumps(business_event(**kw)).encode(), JSON_HEADERS, catalog(), compiled())
    assert result.control is not None
    return result.control


async def test_first_and_newer_pass_duplicate_and_older_are_stale(store) -> None:
    tracker = ControlNumberTracker(store)
    assert isinstance(await tracker.claim(stamp(10)), Claim)
    dup = await tracker.claim(stamp(10))
    assert isinstance(dup, Stale) and dup.reason.startswith("stale control number 10 (duplicate; 10 already")
    older = await tracker.claim(stamp(7))
    assert isinstance(older, Stale) and "stale control number 7 (older; 10" in older.reason
    assert isinstance(await tracker.claim(stamp(25)), Claim)  # gaps are allowed
    assert isinstance(await tracker.claim(stamp(11)), Stale)
    assert (await store.get_checkpoint(stamp(0).checkpoint_name)).data == {"control_number": 25}


async def test_each_record_is_tracked_on_its_own(store) -> None:
    tracker = ControlNumberTracker(store)
    assert isinstance(await tracker.claim(stamp(20, '["USMF","C-2"]')), Claim)
    # an older number for a different record is not stale: control numbers are shared by all events
    assert isinstance(await tracker.claim(stamp(15, '["USMF","C-1"]')), Claim)


def test_the_key_is_entity_legal_entity_and_record_whatever_the_event_names() -> None:
    by_entity = event_stamp(entity="CustCustomerV3Entity")
    by_set = event_stamp(entity="CustomersV3")
    created = event_stamp(operation="Create")  # another business event id, same row
    assert by_entity.checkpoint_name == by_set.checkpoint_name == created.checkpoint_name
    assert by_entity.checkpoint_name == 'controlnumber|CustCustomerV3Entity|USMF|["USMF","C-1"]'
    other = event_stamp(dataAreaId="gbsi", CustomerAccount="C-1")
    assert other.checkpoint_name != by_entity.checkpoint_name


async def test_concurrent_duplicates_let_exactly_one_pass(store) -> None:
    trackers = [ControlNumberTracker(store) for _ in range(12)]
    verdicts = await asyncio.gather(*(t.claim(stamp(42)) for t in trackers))
    assert sum(isinstance(v, Claim) for v in verdicts) == 1
    assert all(v.last_seen == 42 for v in verdicts if isinstance(v, Stale))


async def test_concurrent_distinct_numbers_end_at_the_highest_and_never_pass_backwards(store) -> None:
    tracker = ControlNumberTracker(store)
    numbers = [5, 9, 3, 12, 7, 12, 1, 9]
    verdicts = await asyncio.gather(*(tracker.claim(stamp(n)) for n in numbers))
    passed = [v.stamp.control_number for v in verdicts if isinstance(v, Claim)]
    assert 12 in passed and passed.count(12) == 1
    assert (await store.get_checkpoint(stamp(0).checkpoint_name)).data == {"control_number": 12}
    for v in verdicts:  # every claim overwrote a strictly lower number
        if isinstance(v, Claim) and v.previous is not None:
            assert v.previous.data["control_number"] < v.stamp.control_number


async def test_a_failed_publish_releases_the_claim_so_the_retry_passes(store, mocker) -> None:
    transport = mocker.AsyncMock(spec=Transport)
    transport.publish.side_effect = [ConnectionError("broker down"), None]
    tracker = ControlNumberTracker(store)
    result = accept_finance(json.dumps(business_event(control=100)).encode(), JSON_HEADERS, catalog(), compiled())
    with pytest.raises(ConnectionError):
        await deliver(result, transport, TOPIC, tracker)
    assert await store.get_checkpoint(result.control.checkpoint_name) is None
    delivered = await deliver(result, transport, TOPIC, tracker)
    assert (delivered.sent, delivered.ignored_reason) == (1, None)
    again = await deliver(result, transport, TOPIC, tracker)
    assert again.sent == 0 and again.ignored_reason.startswith("stale control number 100 (duplicate")
    assert transport.publish.await_count == 2


async def test_release_restores_the_previous_number_but_never_undoes_a_newer_one(store) -> None:
    tracker = ControlNumberTracker(store)
    await tracker.claim(stamp(10))
    claim = await tracker.claim(stamp(20))
    assert isinstance(claim, Claim)
    await tracker.release(claim)
    assert (await store.get_checkpoint(claim.stamp.checkpoint_name)).data == {"control_number": 10}
    late = await tracker.claim(stamp(30))
    newer = await tracker.claim(stamp(40))
    assert isinstance(late, Claim) and isinstance(newer, Claim)
    await tracker.release(late)
    assert (await store.get_checkpoint(claim.stamp.checkpoint_name)).data == {"control_number": 40}


async def test_results_without_a_control_number_publish_untracked(store, mocker) -> None:
    transport = mocker.AsyncMock(spec=Transport)
    test_message = json.dumps({"BusinessEventId": "BusinessEventsTestEndpointContract"}).encode()
    result = accept_finance(test_message, JSON_HEADERS, catalog(), compiled())
    delivered = await deliver(result, transport, TOPIC, ControlNumberTracker(store))
    assert delivered.sent == 0 and "test message" in delivered.ignored_reason
    transport.publish.assert_not_called()
