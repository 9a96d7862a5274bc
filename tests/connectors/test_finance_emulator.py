"""The Finance connector against the Finance emulator over real HTTP."""

from __future__ import annotations

import time

import pytest

from shared.connectors import Conflict, FinanceConnector, NotFound, Precondition, Upsert, filter_expr
from shared.connectors.writes import Delete
from tests.connectors.conftest import settings_for

ACTUALS = "ProjCDSActualsImports"


def actual(n: int, company: str = "usmf", **extra):
    return {
        "dataAreaId": company, "ActualId": f"ACT-{n:06d}", "ProjectId": "PRJ-1",
        "TransactionClassification": "Time", "AccountingDate": "2024-03-01", "Quantity": 8.0,
        "Amount": 800.0, "TransactionCurrencyId": "USD", "Description": f"actual {n}", **extra,
    }


@pytest.fixture
def emu(finance_server):
    e = finance_server.app.state.emulator
    e.reset()
    e.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    for company in ("usmf", "uspm"):
        e.load_rows("ProjCDSProjects", [{"dataAreaId": company, "ProjectID": "PRJ-1", "ProjectName": "One",
                                         "ProjectType": "TimeMaterial"}])
    return e


@pytest.fixture
def fo(finance_server, emu, pooled_clients):
    return FinanceConnector.from_settings(settings_for(finance_url=finance_server.url))


def key(n, company="usmf"):
    return {"dataAreaId": company, "ActualId": f"ACT-{n:06d}"}


def body(row):
    return {k: v for k, v in row.items() if k not in ("dataAreaId", "ActualId")}


async def test_upsert_creates_then_updates_and_get_by_composite_key(fo, emu):
    assert await fo.upsert(ACTUALS, key(1), body(actual(1))) == "created"
    assert await fo.upsert(ACTUALS, key(1), {"Quantity": 9.0}) == "updated"
    row = await fo.get(ACTUALS, key(1), select=["ActualId", "Quantity"])
    assert row["Quantity"] == 9.0 and row["ActualId"] == "ACT-000001"
    # Another legal entity's row: reached cross-company.
    assert await fo.upsert(ACTUALS, key(1, "uspm"), body(actual(1, "uspm"))) == "created"
    assert (await fo.get(ACTUALS, key(1, "uspm")))["dataAreaId"] == "uspm"
    assert emu.count(ACTUALS) == 2


async def test_get_missing_is_not_found(fo):
    with pytest.raises(NotFound) as info:
        await fo.get(ACTUALS, key(404))
    assert info.value.status == 404 and info.value.path == "/data/ProjCDSActualsImports(dataAreaId='usmf',ActualId='ACT-000404')"


async def test_duplicate_post_after_race_becomes_patch(fo, emu, mocker):
    # Another writer creates the row between our PATCH (404) and our POST.
    original = fo.http.request

    async def racing(method, url, **kw):
        if method == "POST":
            emu.load_rows(ACTUALS, [actual(7)])
        return await original(method, url, **kw)

    mocker.patch.object(fo.http, "request", side_effect=racing)
    assert await fo.upsert(ACTUALS, key(7), body(actual(7, Quantity=3.0))) == "updated"
    assert next(r for r in emu.rows(ACTUALS) if r["ActualId"] == "ACT-000007")["Quantity"] == 3.0


async def test_duplicate_is_conflict(fo):
    await fo.upsert(ACTUALS, key(2), body(actual(2)))
    with pytest.raises(Conflict):
        await fo.http.request("POST", ACTUALS, json_body=actual(2))


async def test_stale_etag_is_precondition(fo):
    await fo.upsert(ACTUALS, key(3), body(actual(3)))
    etag = (await fo.get(ACTUALS, key(3)))["@odata.etag"]
    await fo.upsert(ACTUALS, key(3), {"Quantity": 1.0})
    with pytest.raises(Precondition):
        await fo.http.request("PATCH", "ProjCDSActualsImports(dataAreaId='usmf',ActualId='ACT-000003')",
                              json_body={"Quantity": 2.0}, headers={"If-Match": etag})


async def test_delete(fo, emu):
    await fo.upsert(ACTUALS, key(4), body(actual(4)))
    assert await fo.delete(ACTUALS, key(4)) is True
    assert await fo.delete(ACTUALS, key(4), missing_ok=True) is False
    with pytest.raises(NotFound):
        await fo.delete(ACTUALS, key(4))


async def test_cross_company_query_pages(fo, emu):
    emu.load_rows(ACTUALS, [actual(n, "usmf" if n % 2 else "uspm") for n in range(250)])
    pages = [p async for p in fo.query(ACTUALS, select=["ActualId", "dataAreaId"], page_size=100)]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert {r["dataAreaId"] for p in pages for r in p} == {"usmf", "uspm"}
    only = [r async for p in fo.query(ACTUALS, filter=filter_expr("dataAreaId eq {}", "uspm")) for r in p]
    assert len(only) == 125


async def test_filter_values_cannot_inject(fo, emu):
    emu.load_rows(ACTUALS, [actual(1), actual(2, Description="x') or ('1'='1")])
    evil = "x') or ('1'='1"
    rows = [r async for p in fo.query(ACTUALS, filter=filter_expr("Description eq {}", evil)) for r in p]
    assert [r["ActualId"] for r in rows] == ["ACT-000002"]
    rows = [r async for p in fo.query(ACTUALS, filter=filter_expr("Description eq {}", "a/b#c%d&e+f ü")) for r in p]
    assert rows == []


async def test_batch_with_a_failing_part(fo, emu):
    emu.load_rows(ACTUALS, [actual(1)])
    writes = [
        Upsert(key(1), {"Quantity": 5.0}),                      # update
        Upsert(key(2), body(actual(2))),                        # 404 -> created by POST
        Upsert(key(3), body(actual(3, ProjectId="NOPE"))),      # refused: project doesn't exist
        Delete(key(99)),                                        # nothing to delete
    ]
    results = await fo.write_batch(ACTUALS, writes)
    assert [r.ok for r in results] == [True, True, False, False]
    assert "NOPE" in results[2].error.message and not results[2].error.retryable
    assert isinstance(results[3].error, NotFound)
    assert {r["ActualId"] for r in emu.rows(ACTUALS)} == {"ACT-000001", "ACT-000002"}


async def test_creates_ask_for_no_echo(fo, emu):
    # The connector never reads a created row back, so its POSTs ask Finance not to send it.
    assert await fo.upsert(ACTUALS, key(1), body(actual(1))) == "created"
    results = await fo.write_batch(ACTUALS, [Upsert(key(n), body(actual(n))) for n in (2, 3)], expect="new")
    assert [(r.ok, r.status) for r in results] == [(True, 204), (True, 204)]
    assert emu.stats()["requests"]["POST"] == {"204": 1, "200": 1}  # the single create, then one $batch
    assert emu.count(ACTUALS) == 3


async def test_throttling_honoured_no_request_during_cooldown(recorded, pooled_clients):
    from sandbox import finance

    srv, log = recorded(finance.create_app(token="t"))
    emu = srv.app.state.emulator
    emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    emu.load_rows("ProjCDSProjects", [{"dataAreaId": "usmf", "ProjectID": "PRJ-1", "ProjectName": "One",
                                       "ProjectType": "TimeMaterial"}])
    fo = FinanceConnector.from_settings(settings_for(finance_url=srv.url, batch_size=2))
    emu.set_throttle(4, 1.0)
    # Admitted requests take 300 ms, so workers whose requests succeed would send their next batch
    # while the others' Retry-After is still running — unless the shared cool-down gate holds them.
    emu.set_faults("latency=300")
    started = time.monotonic()
    results = await fo.write_batch(ACTUALS, [Upsert(key(n), body(actual(n))) for n in range(20)], expect="new")
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results) and emu.count(ACTUALS) == 20
    statuses = [s for _, _, s, _ in log.entries]
    assert statuses.count(200) == 10 and 429 in statuses
    assert elapsed >= 2.0  # 10 batch requests at 4 per second
    assert log.sent_during_cooldown() == []
    assert emu.stats()["throttled"] == statuses.count(429)
