"""The sync handler end to end over real HTTP: both emulators, the SQLite state store, the connectors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.catalog import load_catalog
from shared.catalog.models import Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.finance import FinanceConnector
from shared.connectors.http import registry
from shared.mapping import compile_catalog
from shared.settings import load_settings
from shared.state.models import RunState
from shared.state.sqlite import SqliteStateStore
from shared.sync.handler import SyncHandler
from shared.sync.outcome import Applied, Classification, DeadLetter, Parked, Retry, Skipped
from shared.sync.sides import DataverseSide, FinanceSide

TOKEN = "t"
FIXTURES = Path(__file__).parent / "fixtures"
COMPILED = compile_catalog(load_catalog(FIXTURES))


@pytest.fixture
def servers(emulators):
    return emulators


@pytest.fixture
async def env(servers, tmp_path):
    dv, fo = servers
    dv.app.state.emulator.reset()
    fo.app.state.emulator.reset()
    settings = load_settings(dataverse_url=dv.url, finance_url=fo.url, auth_mode="static_token",
                             static_token=TOKEN, retry_budget_seconds=5.0)
    state = SqliteStateStore(tmp_path / "state.sqlite")
    await state.open()
    sides = {
        Side.DATAVERSE: DataverseSide(DataverseConnector.from_settings(settings), COMPILED),
        Side.FINANCE: FinanceSide(FinanceConnector.from_settings(settings), COMPILED),
    }
    handler = SyncHandler(COMPILED, sides, state)
    fo.app.state.emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"}])
    fo.app.state.emulator.load_rows("LegalEntities", [{"LegalEntityId": "USPM", "Name": "Contoso US"}])
    fo.app.state.emulator.load_rows("CustomersV3", [
        {"dataAreaId": "uspm", "CustomerAccount": "C-1", "OrganizationName": "Fabrikam",
         "CustomerGroupId": "10", "SalesCurrencyCode": "USD"}])
    yield handler, state, dv, fo
    await state.close()
    await registry.aclose()


def dv_client(dv) -> httpx.Client:
    return httpx.Client(base_url=dv.url + "/api/data/v9.2/", headers={"Authorization": f"Bearer {TOKEN}"})


def create_project(dv, number: str, customer: str, name: str = "Office move") -> str:
    with dv_client(dv) as c:
        r = c.post("msdyn_projects", json={
            "msdyn_projectnumber": number, "msdyn_subject": name,
            "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USPM')",
            "msdyn_customer@odata.bind": f"/accounts(accountnumber='{customer}',_msdyn_company_value="
                                         f"{company_id(c)})",
        })
        assert r.status_code == 204, r.text
        return r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def company_id(c: httpx.Client) -> str:
    return c.get("cdm_companies(cdm_companycode='USPM')").json()["cdm_companyid"]


def finance_rows(fo, entity_set):
    return list(fo.app.state.emulator.rows(entity_set))


async def test_finance_to_dataverse_then_dataverse_to_finance(env):
    handler, state, dv, fo = env
    assert await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]') == Applied("upsert", '["USPM"]')
    assert await handler.handle("customers", Side.FINANCE, key='["USPM","C-1"]') == Applied("upsert", '["USPM","C-1"]')
    with dv_client(dv) as c:
        account = c.get("accounts", params={"$filter": "accountnumber eq 'C-1'"}).json()["value"][0]
    assert account["name"] == "Fabrikam" and account["_msdyn_company_value"]

    project_id = create_project(dv, "P-1", "C-1")
    outcome = await handler.handle("projects", Side.DATAVERSE, record_id=project_id)
    assert outcome == Applied("upsert", '["USPM","P-1"]')
    [row] = finance_rows(fo, "ProjCDSProjects")
    assert (row["dataAreaId"], row["ProjectID"], row["ProjectName"], row["CustomerAccount"], row["ProjectType"]) == (
        "uspm", "P-1", "Office move", "C-1", "TimeMaterial")

    # the same notification again, and the echo of our own customer write: nothing written
    assert await handler.handle("projects", Side.DATAVERSE, record_id=project_id) == Skipped("unchanged", '["USPM","P-1"]')
    before = [dict(r) for r in finance_rows(fo, "CustomersV3")]
    assert (await handler.handle("customers", Side.DATAVERSE, record_id=account["accountid"])).reason == "unchanged"
    assert [dict(r) for r in finance_rows(fo, "CustomersV3")] == before  # no write, not even an identical one


async def test_child_before_parent_waits_then_lands(env):
    handler, state, dv, fo = env
    await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]')
    with dv_client(dv) as c:  # a customer that exists only in Dataverse so far
        r = c.post("accounts", json={"accountnumber": "C-2", "name": "Litware",
                                     "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USPM')"})
        assert r.status_code == 204, r.text
        customer_id = r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    project_id = create_project(dv, "P-2", "C-2")
    outcome = await handler.handle("projects", Side.DATAVERSE, record_id=project_id)
    assert isinstance(outcome, Retry) and outcome.classification is Classification.DEPENDENCY_MISSING
    assert "customers" in outcome.reason and "C-2" in outcome.reason
    assert finance_rows(fo, "ProjCDSProjects") == []

    assert await handler.handle("customers", Side.DATAVERSE, record_id=customer_id) == Applied("upsert", '["USPM","C-2"]')
    assert await handler.handle("projects", Side.DATAVERSE, record_id=project_id, attempt=1) == Applied(
        "upsert", '["USPM","P-2"]')


async def test_dependency_retries_are_bounded(env):
    handler, state, dv, fo = env
    await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]')
    with dv_client(dv) as c:
        c.post("accounts", json={"accountnumber": "C-3", "name": "Adatum",
                                 "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USPM')"})
    project_id = create_project(dv, "P-3", "C-3")
    last = handler.policy.dependency_attempts - 1
    outcome = await handler.handle("projects", Side.DATAVERSE, record_id=project_id, attempt=last)
    assert isinstance(outcome, DeadLetter) and outcome.classification is Classification.DEPENDENCY_MISSING
    assert "customers" in outcome.reason


async def test_delete_propagates_and_validation_error_is_dead_lettered(env):
    handler, state, dv, fo = env
    await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]')
    await handler.handle("customers", Side.FINANCE, key='["USPM","C-1"]')
    project_id = create_project(dv, "P-4", "C-1")
    assert isinstance(await handler.handle("projects", Side.DATAVERSE, record_id=project_id), Applied)
    with dv_client(dv) as c:
        assert c.delete(f"msdyn_projects({project_id})").status_code == 204
    assert await handler.handle("projects", Side.DATAVERSE, record_id=project_id) == Applied("delete", '["USPM","P-4"]')
    assert finance_rows(fo, "ProjCDSProjects") == []

    long_name = "x" * 61  # ProjectName is 60 characters in Finance, 200 in Dataverse
    bad_id = create_project(dv, "P-5", "C-1", name=long_name)
    outcome = await handler.handle("projects", Side.DATAVERSE, record_id=bad_id)
    assert isinstance(outcome, DeadLetter) and outcome.classification is Classification.VALIDATION
    assert finance_rows(fo, "ProjCDSProjects") == []


async def test_paused_map_parks_the_notification(env):
    handler, state, dv, fo = env
    await state.set_map_state("legal_entities", RunState.PAUSED, reason="maintenance")
    assert await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]') == Parked(handler.policy.pause_delay)
    await state.set_map_state("legal_entities", RunState.RUNNING)
    assert await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]') == Applied("upsert", '["USPM"]')


def fo_client(fo) -> httpx.Client:
    return httpx.Client(base_url=fo.url + "/data/", headers={"Authorization": f"Bearer {TOKEN}"})


async def test_echo_of_our_write_never_overwrites_a_newer_edit_at_its_source(env):
    """Finance edits a customer twice; the Dataverse echo of the first sync arrives after the second edit.

    The echo carries nothing new (Dataverse holds exactly what we wrote), so it must not be written back
    over Finance's newer edit; the second edit's own notification then lands it in Dataverse."""
    handler, state, dv, fo = env
    await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]')
    key = '["USPM","C-1"]'
    assert await handler.handle("customers", Side.FINANCE, key=key) == Applied("upsert", key)
    with dv_client(dv) as c:
        account = c.get("accounts", params={"$filter": "accountnumber eq 'C-1'"}).json()["value"][0]
    with fo_client(fo) as c:
        r = c.patch("CustomersV3(dataAreaId='uspm',CustomerAccount='C-1')?cross-company=true",
                    json={"OrganizationName": "Fabrikam Holdings"})
        assert r.status_code == 204, r.text

    outcome = await handler.handle("customers", Side.DATAVERSE, record_id=account["accountid"])
    assert outcome == Skipped("unchanged", key)
    [customer] = finance_rows(fo, "CustomersV3")
    assert customer["OrganizationName"] == "Fabrikam Holdings"

    assert await handler.handle("customers", Side.FINANCE, key=key) == Applied("upsert", key)
    with dv_client(dv) as c:
        assert c.get(f"accounts({account['accountid']})").json()["name"] == "Fabrikam Holdings"


async def test_a_real_edit_on_the_other_side_still_syncs_back(env):
    handler, state, dv, fo = env
    await handler.handle("legal_entities", Side.FINANCE, key='["USPM"]')
    key = '["USPM","C-1"]'
    await handler.handle("customers", Side.FINANCE, key=key)
    with dv_client(dv) as c:
        account = c.get("accounts", params={"$filter": "accountnumber eq 'C-1'"}).json()["value"][0]
        assert c.patch(f"accounts({account['accountid']})", json={"name": "Fabrikam EU"}).status_code == 204

    assert await handler.handle("customers", Side.DATAVERSE, record_id=account["accountid"]) == Applied("upsert", key)
    [customer] = finance_rows(fo, "CustomersV3")
    assert customer["OrganizationName"] == "Fabrikam EU"
    # and Finance's echo of that write is recognised in turn
    assert await handler.handle("customers", Side.FINANCE, key=key) == Skipped("unchanged", key)
