"""The control API and object: faults, throttling (429 in Finance's shape), reset, stats, bulk load."""

from __future__ import annotations

import httpx
import pytest

from sandbox.finance import FinanceEmulator, create_app
from sandbox.httpserver import RunningServer


def test_faults_over_control_api(server: RunningServer, emulator: FinanceEmulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}) as admin:
        r = admin.put("/_emulator/faults", json={"spec": "error5xx@GET/Currencies*=502"})
        assert r.status_code == 200 and r.json()["spec"] == "error5xx@GET/Currencies*=502"
        assert admin.get("/_emulator/faults").json()["spec"] == "error5xx@GET/Currencies*=502"
        bad = admin.put("/_emulator/faults", json={"spec": "boom:2"})
        assert bad.status_code == 400 and "boom:2" in bad.json()["error"]["innererror"]["message"]
        failed = client.get("/Currencies")
        assert failed.status_code == 502 and failed.json()["error"]["message"] == "An error has occurred."
        assert client.get("/ProjCDSProjects").status_code == 200
        assert admin.get("/_emulator/stats").json()["faults"] == {"error5xx": 1}
        admin.put("/_emulator/faults", json={"spec": None})
        assert client.get("/Currencies").status_code == 200


def test_throttle_gives_429_with_retry_after(server: RunningServer, emulator: FinanceEmulator,
                                             client: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}) as admin:
        r = admin.put("/_emulator/throttle", json={"requests_per_window": 3, "window_seconds": 30})
        assert r.json() == {"requests_per_window": 3, "window_seconds": 30.0, "concurrent": None}
        statuses = [client.get("/Currencies").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        r = client.get("/Currencies")
        assert 1 <= int(r.headers["Retry-After"]) <= 30
        assert "high resource utilization" in r.json()["error"]["innererror"]["message"]
        assert admin.get("/_emulator/stats").json()["throttled"] == 3  # the control API itself is exempt
        admin.put("/_emulator/throttle", json={"requests_per_window": None})
        assert client.get("/Currencies").status_code == 200


def test_reset_and_stats(server: RunningServer, emulator: FinanceEmulator, client: httpx.Client) -> None:
    client.post("/Currencies", json={"CurrencyCode": "EUR", "Name": "Euro"})
    client.get("/Nope")
    stats = emulator.stats()
    assert stats["requests"]["POST"] == {"201": 1} and stats["requests"]["GET"] == {"404": 1}
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}) as admin:
        assert admin.post("/_emulator/reset").status_code == 204
    assert emulator.count("Currencies") == 0 and emulator.stats()["requests_total"] == 0


def test_load_rows_enforces_keys_and_types(emulator: FinanceEmulator) -> None:
    assert emulator.load_rows("Currencies", [{"CurrencyCode": "USD", "Name": "Dollar"}]) == 1
    with pytest.raises(ValueError, match="duplicate key"):
        emulator.load_rows("Currencies", [{"CurrencyCode": "EUR", "Name": "Euro"}, {"CurrencyCode": "usd", "Name": "x"}])
    assert emulator.count("Currencies") == 1  # the failed load left nothing behind
    with pytest.raises(ValueError, match="unknown field"):
        emulator.load_rows("Currencies", [{"CurrencyCode": "EUR", "Name": "Euro", "Colour": 1}])
    with pytest.raises(ValueError, match="key field"):
        emulator.load_rows("Currencies", [{"Name": "Euro"}])
    with pytest.raises(ValueError, match="related table"):
        emulator.load_rows("ProjCDSTasks", [{"ProjectId": "P", "Task": "1", "Name": "x"}], validate=True)
    with pytest.raises(KeyError):
        emulator.count("Nope")
    rows = list(emulator.rows("Currencies"))
    assert rows[0]["CurrencyCode"] == "USD" and rows[0]["ModifiedDateTime"].endswith("Z")


def test_create_app_with_file_db_keeps_data(tmp_path: object) -> None:
    db = f"{tmp_path}/finance.db"
    app = create_app(db=db, token=None, default_company="USPM")
    emu: FinanceEmulator = app.state.emulator
    emu.load_rows("ProjCDSProjects", [{"ProjectID": "P-1", "ProjectName": "x", "ProjectType": "Time"}])
    emu.store.close()
    again: FinanceEmulator = create_app(db=db).state.emulator
    assert [r["dataAreaId"] for r in again.rows("ProjCDSProjects")] == ["uspm"]
    again.store.close()
