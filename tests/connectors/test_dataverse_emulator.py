"""The Dataverse connector against the Dataverse emulator over real HTTP."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from shared.connectors import (
    Auth,
    DataverseConnector,
    Delete,
    ForeignLink,
    LookupTargetMissing,
    NotFound,
    Precondition,
    Upsert,
    Validation,
    filter_expr,
)
from tests.connectors.conftest import settings_for

PROJECTS = "msdyn_projects"
COMPANIES = "cdm_companies"


@pytest.fixture
def emu(dataverse_server):
    e = dataverse_server.app.state.emulator
    e.reset()
    e.set_faults(None)
    e.set_throttle(None)
    e.load_rows(COMPANIES, [{"cdm_companycode": "USPM", "cdm_name": "US PM"},
                            {"cdm_companycode": "USMF", "cdm_name": "US MF"}])
    return e


@pytest.fixture
def dv(dataverse_server, emu, pooled_clients):
    return DataverseConnector.from_settings(settings_for(dataverse_url=dataverse_server.url))


def company(code):
    return (COMPANIES, {"cdm_companycode": code})


async def project_key(dv, number, code="USPM"):
    return {"msdyn_projectnumber": number, "_msdyn_company_value": await dv.resolve_id(*company(code))}


async def test_upsert_by_alternate_key_with_lookup_then_get(dv, emu):
    key = await project_key(dv, "P/1#50% 'ü'")  # slash, hash, percent, quote, unicode in a key
    rid = await dv.upsert(PROJECTS, key, {"msdyn_subject": "One"}, lookups={"msdyn_company": company("USPM")})
    assert rid is not None
    await dv.upsert(PROJECTS, key, {"msdyn_subject": "One v2"}, lookups={"msdyn_company": company("USPM")})
    assert emu.count(PROJECTS) == 1
    by_key = await dv.get(PROJECTS, key, select=["msdyn_subject", "msdyn_projectnumber"])
    by_id = await dv.get(PROJECTS, rid)
    assert by_key["msdyn_subject"] == by_id["msdyn_subject"] == "One v2"
    assert by_key["msdyn_projectnumber"] == "P/1#50% 'ü'"
    assert by_id["_msdyn_company_value"] == str(await dv.resolve_id(*company("USPM")))


async def test_resolve_id_is_cached(dv, emu, mocker):
    spy = mocker.spy(dv.http, "request")
    first = await dv.resolve_id(COMPANIES, {"cdm_companycode": "USMF"})
    again = await dv.resolve_id(COMPANIES, {"cdm_companycode": "USMF"})
    assert first == again and spy.call_count == 1
    with pytest.raises(NotFound):
        await dv.resolve_id(COMPANIES, {"cdm_companycode": "NONE"})


async def test_injection_in_key_and_filter_is_just_a_value(dv, emu):
    evil = "x') or ('1'='1"
    await dv.upsert(PROJECTS, await project_key(dv, "real"), {"msdyn_subject": "real"},
                    lookups={"msdyn_company": company("USPM")})
    with pytest.raises(NotFound):
        await dv.get(PROJECTS, await project_key(dv, evil))
    rows = [r async for p in dv.query(PROJECTS, filter=filter_expr("msdyn_projectnumber eq {}", evil)) for r in p]
    assert rows == []


async def test_lookup_target_missing_is_distinguishable(dv, emu):
    key = await project_key(dv, "P-2")
    missing = uuid.uuid4()
    with pytest.raises(LookupTargetMissing) as info:
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "Two"},
                        lookups={"msdyn_company": company("USPM"), "msdyn_customer": ("accounts", missing)})
    assert info.value.entity_set == "accounts" and info.value.key == f"({missing})"
    assert info.value.status == 404
    with pytest.raises(LookupTargetMissing) as by_key:  # by alternate key too
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "Two"}, lookups={"msdyn_company": company("NOPE")})
    assert by_key.value.entity_set == COMPANIES and by_key.value.key == "(cdm_companycode='NOPE')"


async def test_412_and_404_paths(dv, emu):
    key = await project_key(dv, "P-3")
    lookups = {"msdyn_company": company("USPM")}
    with pytest.raises(NotFound) as missing:  # update-only on a row that isn't there
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "x"}, lookups=lookups, if_match="*")
    assert type(missing.value) is NotFound
    await dv.upsert(PROJECTS, key, {"msdyn_subject": "Three"}, lookups=lookups, create_only=True)
    with pytest.raises(Precondition):  # create-only on a row that is there
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "x"}, lookups=lookups, create_only=True)
    etag = (await dv.get(PROJECTS, key))["@odata.etag"]
    await dv.upsert(PROJECTS, key, {"msdyn_subject": "Three b"}, if_match=etag)
    with pytest.raises(Precondition):  # the ETag we read is stale now
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "Three c"}, if_match=etag)
    with pytest.raises(Validation) as bad:
        await dv.upsert(PROJECTS, key, {"msdyn_subject": "y" * 300})
    assert bad.value.code and "msdyn_subject" in bad.value.message


async def test_delete(dv, emu):
    key = await project_key(dv, "P-4")
    await dv.upsert(PROJECTS, key, {"msdyn_subject": "Four"}, lookups={"msdyn_company": company("USPM")})
    assert await dv.delete(PROJECTS, key) is True
    assert await dv.delete(PROJECTS, key, missing_ok=True) is False
    with pytest.raises(NotFound):
        await dv.delete(PROJECTS, key)


def load_projects(emu, n, company_id):
    return emu.load_rows(PROJECTS, [{"msdyn_subject": f"S{i}", "msdyn_projectnumber": f"N{i:05d}",
                                     "_msdyn_company_value": company_id} for i in range(n)])


async def test_query_pages(dv, emu):
    load_projects(emu, 250, await dv.resolve_id(*company("USPM")))
    pages = [p async for p in dv.query(PROJECTS, select=["msdyn_projectnumber"], page_size=100)]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert len({r["msdyn_projectnumber"] for p in pages for r in p}) == 250


async def test_changes_with_deletes_and_expired_token(dv, emu):
    ids = load_projects(emu, 120, await dv.resolve_id(*company("USPM")))
    initial = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], page_size=50)]
    assert [len(p.rows) for p in initial] == [50, 50, 20]
    token = initial[-1].delta_token
    assert token and all(p.delta_token is None for p in initial[:-1]) and not initial[-1].full_reread

    await dv.upsert(PROJECTS, ids[0], {"msdyn_subject": "changed"})
    await dv.delete(PROJECTS, ids[1])
    await dv.delete(PROJECTS, ids[2])
    delta = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], delta_token=token)]
    assert [r["msdyn_subject"] for p in delta for r in p.rows] == ["changed"]
    assert sorted(str(i) for p in delta for i in p.deleted_ids) == sorted(ids[1:3])
    token2 = delta[-1].delta_token
    assert token2 and token2 != token

    await dv.upsert(PROJECTS, ids[3], {"msdyn_subject": "changed again"})
    emu.expire_delta_tokens()  # the history behind token2 is cleaned up
    reread = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], delta_token=token2)]
    assert all(p.full_reread for p in reread)
    assert sum(len(p.rows) for p in reread) == 118 and reread[-1].delta_token


async def test_token_issued_at_the_expiry_boundary_stays_valid(dv, emu):
    """Expiry forgets the history *before* it (apis.md: a token is valid until its changes are
    cleaned up): a token issued right after, with no change since, still works, and one issued
    right before does not."""
    ids = load_projects(emu, 3, await dv.resolve_id(*company("USPM")))
    before = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"])][-1].delta_token
    emu.expire_delta_tokens()
    after = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"])][-1].delta_token
    stale = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], delta_token=before)]
    assert all(p.full_reread for p in stale) and sum(len(p.rows) for p in stale) == 3
    fresh = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], delta_token=after)]
    assert not any(p.full_reread for p in fresh) and sum(len(p.rows) for p in fresh) == 0
    await dv.upsert(PROJECTS, ids[0], {"msdyn_subject": "changed"})
    fresh = [p async for p in dv.changes(PROJECTS, select=["msdyn_subject"], delta_token=after)]
    assert not any(p.full_reread for p in fresh) and [r["msdyn_subject"] for p in fresh for r in p.rows] == ["changed"]


async def test_batch_with_a_failing_part(dv, emu):
    uspm = await dv.resolve_id(*company("USPM"))
    existing = load_projects(emu, 1, uspm)[0]
    writes = [
        Upsert({"msdyn_projectnumber": "B-1", "_msdyn_company_value": uspm}, {"msdyn_subject": "B1"},
               lookups={"msdyn_company": company("USPM")}),
        Upsert({"msdyn_projectnumber": "B-2", "_msdyn_company_value": uspm}, {"msdyn_subject": "z" * 300}),
        Upsert({"msdyn_projectnumber": "B-3", "_msdyn_company_value": uspm}, {"msdyn_subject": "B3"},
               lookups={"msdyn_customer": ("accounts", uuid.uuid4())}),
        Delete(existing),
    ]
    for mode in ("batch", "upsert_multiple"):
        results = await dv.write_batch(PROJECTS, writes if mode == "batch" else writes[:3], mode=mode)
        assert [r.ok for r in results][:3] == [True, False, False], mode
        assert isinstance(results[1].error, Validation)
        assert isinstance(results[2].error, LookupTargetMissing) and results[2].error.entity_set == "accounts"
    assert {r["msdyn_projectnumber"] for r in emu.rows(PROJECTS)} == {"B-1"}


async def test_upsert_multiple_chunks(dv, emu):
    uspm = await dv.resolve_id(*company("USPM"))
    dv.batch_size = 7
    writes = [Upsert({"msdyn_projectnumber": f"M-{i}", "_msdyn_company_value": uspm}, {"msdyn_subject": f"M{i}"})
              for i in range(30)]
    results = await dv.write_batch(PROJECTS, writes, mode="upsert_multiple")
    assert all(r.ok for r in results) and emu.count(PROJECTS) == 30
    stats = emu.stats()["requests"]["POST"]
    assert sum(stats.values()) == 5  # ceil(30 / 7) requests


def posts(emu):
    """POSTs answered so far, by status: 204 = UpsertMultiple, 200 = $batch, 400 = refused."""
    return dict(emu.stats()["requests"].get("POST", {}))


async def test_batched_upserts_go_as_upsert_multiple_by_default(dv, emu):
    uspm = await dv.resolve_id(*company("USPM"))
    assert dv.bulk_write == "upsert_multiple" and dv.batch_size == 50  # settings' default mode, the test's size
    writes = [Upsert({"msdyn_projectnumber": f"D-{i}", "_msdyn_company_value": uspm}, {"msdyn_subject": f"D{i}"},
                     lookups={"msdyn_company": company("USPM")}) for i in range(120)]
    results = await dv.write_batch(PROJECTS, writes)
    assert all(r.ok for r in results) and emu.count(PROJECTS) == 120
    assert posts(emu) == {"204": 3}  # ceil(120 / 50) UpsertMultiple requests, no $batch


async def test_conditional_writes_and_deletes_go_through_batch(dv, emu):
    uspm = await dv.resolve_id(*company("USPM"))
    existing = load_projects(emu, 2, uspm)
    await dv.write_batch(PROJECTS, [Upsert(existing[0], {"msdyn_subject": "only if there"}, if_match="*")])
    await dv.write_batch(PROJECTS, [Upsert({"msdyn_projectnumber": "C-1", "_msdyn_company_value": uspm},
                                           {"msdyn_subject": "new"}, create_only=True)])
    await dv.write_batch(PROJECTS, [Upsert({"msdyn_projectnumber": "C-2", "_msdyn_company_value": uspm},
                                           {"msdyn_subject": "new"}), Delete(existing[1])])
    assert posts(emu) == {"200": 3}  # three $batch requests, no UpsertMultiple
    assert {r["msdyn_projectnumber"] for r in emu.rows(PROJECTS)} == {"N00000", "C-1", "C-2"}
    assert [r["msdyn_subject"] for r in emu.rows(PROJECTS) if r["msdyn_projectnumber"] == "N00000"] == ["only if there"]


async def test_table_without_bulk_messages_falls_back_to_batch_and_remembers(dv, emu):
    uspm = await dv.resolve_id(*company("USPM"))
    emu.service.bulk_unsupported.add("msdyn_project")
    dv.batch_size = 7
    writes = [Upsert({"msdyn_projectnumber": f"N-{i}", "_msdyn_company_value": uspm}, {"msdyn_subject": f"N{i}"})
              for i in range(30)]
    results = await dv.write_batch(PROJECTS, writes[:21])  # 3 chunks, all in flight at once (ceiling 8)
    assert all(r.ok for r in results) and emu.count(PROJECTS) == 21
    assert posts(emu) == {"400": 3, "200": 3}  # each refused chunk re-sent as $batch
    assert dv.no_bulk_messages == {PROJECTS}
    results = await dv.write_batch(PROJECTS, writes[21:])
    assert all(r.ok for r in results) and emu.count(PROJECTS) == 30
    assert posts(emu) == {"400": 3, "200": 5}  # learned: straight to $batch


async def test_batch_mode_setting_sends_batch(dataverse_server, emu, pooled_clients):
    dv = DataverseConnector.from_settings(settings_for(dataverse_url=dataverse_server.url, dataverse_bulk_write="batch"))
    uspm = await dv.resolve_id(*company("USPM"))
    writes = [Upsert({"msdyn_projectnumber": f"S-{i}", "_msdyn_company_value": uspm}, {"msdyn_subject": "s"})
              for i in range(60)]
    assert all(r.ok for r in await dv.write_batch(PROJECTS, writes))
    assert posts(emu) == {"200": 2} and emu.count(PROJECTS) == 60


async def test_token_refreshed_once_on_401(dataverse_server, emu, pooled_clients):
    class Rotating:
        def __init__(self):
            self.calls = []

        async def token(self, *, rejected=None):
            self.calls.append(rejected)
            return "t" if rejected == "expired" else "expired"

    tokens = Rotating()
    dv = DataverseConnector.from_settings(settings_for(dataverse_url=dataverse_server.url), tokens=tokens)
    assert (await dv.get(COMPANIES, {"cdm_companycode": "USPM"}))["cdm_name"] == "US PM"
    assert tokens.calls == [None, "expired"]
    assert emu.stats()["requests"]["GET"] == {"200": 1, "401": 1}


async def test_wrong_token_is_auth_error(dataverse_server, emu, pooled_clients):
    settings = settings_for(dataverse_url=dataverse_server.url, static_token="wrong")
    dv = DataverseConnector.from_settings(settings)
    with pytest.raises(Auth) as info:
        await dv.get(COMPANIES, {"cdm_companycode": "USPM"})
    assert info.value.status == 401
    assert emu.stats()["requests"]["GET"] == {"401": 2}


def foreign_links(app, host):
    """Rewrite next links so they point at ``host``: a tampered or misrouted response."""

    async def wrapped(scope, receive, send):
        held = {}

        async def rewriting_send(message):
            if message["type"] == "http.response.start":
                held["start"] = message
                return
            body = message.get("body", b"")
            try:
                data = json.loads(body)
                if "@odata.nextLink" in data:
                    data["@odata.nextLink"] = data["@odata.nextLink"].replace("127.0.0.1", host)
                body = json.dumps(data).encode()
            except ValueError:
                pass
            start = held["start"]
            start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            start["headers"].append((b"content-length", str(len(body)).encode()))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, rewriting_send)

    wrapped.state = app.state
    return wrapped


async def test_foreign_next_link_refused(recorded, pooled_clients, connector_logs):
    from sandbox import dataverse

    srv, log = recorded(foreign_links(dataverse.create_app(token="t"), "attacker.example"))
    emu = srv.app.state.emulator
    c = emu.load_rows(COMPANIES, [{"cdm_companycode": "USPM"}])[0]
    emu.load_rows(PROJECTS, [{"msdyn_subject": f"S{i}", "_msdyn_company_value": c} for i in range(5)])
    dv = DataverseConnector.from_settings(settings_for(dataverse_url=srv.url))
    pages = []
    with pytest.raises(ForeignLink):
        async for page in dv.query(PROJECTS, page_size=2):
            pages.append(page)
    assert len(pages) == 1 and len(log.entries) == 1  # the foreign link was never requested
    assert "attacker.example" in connector_logs.text


@pytest.mark.parametrize(("mode", "ok_status"), [("batch", 200), ("upsert_multiple", 204)])
async def test_throttling_honoured_no_request_during_cooldown(recorded, pooled_clients, mode, ok_status):
    from sandbox import dataverse

    srv, log = recorded(dataverse.create_app(token="t"))
    emu = srv.app.state.emulator
    uspm = emu.load_rows(COMPANIES, [{"cdm_companycode": "USPM"}])[0]
    dv = DataverseConnector.from_settings(settings_for(dataverse_url=srv.url, batch_size=2,
                                                       dataverse_bulk_write=mode))
    emu.set_throttle(4, 1.0)
    emu.set_faults("latency=300")
    writes = [Upsert({"msdyn_projectnumber": f"T-{i}", "_msdyn_company_value": uspm}, {"msdyn_subject": "t"})
              for i in range(20)]
    started = time.monotonic()
    results = await dv.write_batch(PROJECTS, writes)
    assert all(r.ok for r in results) and emu.count(PROJECTS) == 20
    statuses = [s for _, _, s, _ in log.entries]
    assert statuses.count(ok_status) == 10 and 429 in statuses
    assert time.monotonic() - started >= 2.0
    assert log.sent_during_cooldown() == []
    assert emu.stats()["throttled"] == statuses.count(429)


async def test_transient_faults_retried(dv, emu):
    emu.set_faults("error5xx:0.5@GET=503")
    for _ in range(10):
        assert (await dv.get(COMPANIES, {"cdm_companycode": "USPM"}))["cdm_companycode"] == "USPM"
    assert emu.stats()["requests"]["GET"].get("503", 0) > 0

