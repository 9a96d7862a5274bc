"""Failing calls made with secrets in the settings leave no secret in any log record or error."""

from __future__ import annotations

import logging

import pytest

from shared.connectors import ConnectorError, DataverseConnector, FinanceConnector, Upsert
from shared.settings import load_settings

SECRET_TOKEN = "tok-7f3a9c1e-DO-NOT-LOG"
CLIENT_SECRET = "cs~Zq8-DO-NOT-LOG"
QUERY_KEY = "fkey-55aa-DO-NOT-LOG"
ROW_CONTENT = "row-content-DO-NOT-LOG"


@pytest.fixture
def servers():
    from sandbox import dataverse, finance

    dv, fo = dataverse.start(port=0, token=SECRET_TOKEN), finance.start(port=0, token=SECRET_TOKEN)
    yield dv, fo
    dv.stop()
    fo.stop()


async def test_no_secret_in_logs_of_failing_calls(servers, caplog, pooled_clients):
    dv_srv, fo_srv = servers
    settings = load_settings(
        dataverse_url=dv_srv.url, finance_url=fo_srv.url, auth_mode="static_token", static_token=SECRET_TOKEN,
        tenant_id="tid", client_id="cid", client_secret=CLIENT_SECRET, retry_budget_seconds=3,
    )
    dv_srv.app.state.emulator.set_faults("error5xx:0.3=503;reset:0.1")
    fo_srv.app.state.emulator.set_throttle(2, 1.0)
    dv, fo = DataverseConnector.from_settings(settings), FinanceConnector.from_settings(settings)
    errors: list[ConnectorError] = []
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, stamina, uvicorn

    async def attempt(call):
        try:
            await call
        except ConnectorError as exc:
            errors.append(exc)

    for _ in range(3):
        await attempt(dv.get("accounts", {"accountnumber": "ACC-1", "msdyn_company": "x"}))
        await attempt(dv.http.request("GET", f"cdm_companies?code={QUERY_KEY}"))
        await attempt(dv.upsert("cdm_companies", {"cdm_companycode": "C1"}, {"cdm_name": ROW_CONTENT * 10}))
        await attempt(fo.upsert("ProjCDSActualsImports", {"dataAreaId": "usmf", "ActualId": "A"},
                                {"Description": ROW_CONTENT}))
        await attempt(fo.http.request("GET", f"ProjCDSActualsImports?code={QUERY_KEY}"))
    results = await fo.write_batch("ProjCDSActualsImports",
                                   [Upsert({"dataAreaId": "usmf", "ActualId": "B"}, {"Description": ROW_CONTENT})])
    errors += [r.error for r in results if r.error]
    assert errors, "the calls were meant to fail"
    assert any(r.name == "dualsync.connectors" for r in caplog.records)

    text = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    text += "".join(str(e) + repr(e) for e in errors)
    for secret in (SECRET_TOKEN, CLIENT_SECRET, QUERY_KEY):
        assert secret not in text
    # Row contents (bodies) stay out of our own log records; the path keeps only the key, to name the row.
    ours = "".join(r.getMessage() + repr(r.__dict__) for r in caplog.records if r.name == "dualsync.connectors")
    assert ROW_CONTENT not in ours
