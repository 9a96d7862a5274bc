"""A Finance emulator on loopback, shared by the module's tests and reset before each one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.finance import FinanceEmulator, start
from sandbox.httpserver import RunningServer

TOKEN = "test-token"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start(token=TOKEN, page_size=5, event_retry_wait=0.05)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def emulator(server: RunningServer) -> FinanceEmulator:
    emu: FinanceEmulator = server.app.state.emulator
    emu.reset()
    return emu


@pytest.fixture()
def client(server: RunningServer, emulator: FinanceEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/data", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=10) as c:
        yield c


def seed_basics(emu: FinanceEmulator) -> None:
    """Currencies, two companies' customers, a project in usmf and one in gbsi."""
    emu.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "US dollar"},
                                 {"CurrencyCode": "GBP", "Name": "Pound"}])
    emu.load_rows("CustomersV3", [
        {"dataAreaId": "usmf", "CustomerAccount": "C-1", "OrganizationName": "Contoso", "CustomerGroupId": "10",
         "SalesCurrencyCode": "USD"},
        {"dataAreaId": "gbsi", "CustomerAccount": "C-1", "OrganizationName": "Contoso UK",
         "CustomerGroupId": "10", "SalesCurrencyCode": "GBP"},
    ])
    emu.load_rows("ProjCDSProjects", [
        {"dataAreaId": "usmf", "ProjectID": "P-1", "ProjectName": "Alpha", "ProjectType": "TimeMaterial",
         "CustomerAccount": "C-1"},
        {"dataAreaId": "gbsi", "ProjectID": "P-9", "ProjectName": "Beta", "ProjectType": "FixedPrice"},
    ])
    emu.load_rows("ProjectCategories", [
        {"dataAreaId": "usmf", "CategoryId": "Travel", "CategoryName": "Travel", "TransactionType": "Expense"},
    ])


def infolog(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"] == "An error has occurred."
    inner = body["error"]["innererror"]
    assert set(inner) == {"message", "type", "stacktrace"}
    return str(inner["message"])
