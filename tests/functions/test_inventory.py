"""The function inventory: what the Functions host will index, checked without the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def functions(app_functions):
    return app_functions


@pytest.fixture(scope="module")
def catalog():
    from shared.runtime import get_runtime

    return get_runtime().catalog


def _trigger(fn) -> dict:
    return next(b for b in json.loads(fn.get_function_json())["bindings"] if b["direction"] == "IN")


def test_one_session_enabled_sync_function_per_map(functions, catalog):
    sync = {n: f for n, f in functions.items() if n.startswith("sync_")}
    assert sorted(sync) == sorted(f"sync_{m}" for m in catalog.maps)
    for name in catalog.maps:
        t = _trigger(sync[f"sync_{name}"])
        assert t["type"] == "serviceBusTrigger"
        assert (t["topicName"], t["subscriptionName"]) == ("%DUALSYNC_CHANGE_TOPIC%", name)
        assert t["isSessionsEnabled"] is True
        assert t["connection"] == "ServiceBusConnection"


def test_one_dead_letter_function_per_map(functions, catalog):
    for name in catalog.maps:
        t = _trigger(functions[f"deadletter_{name}"])
        assert t["subscriptionName"] == f"{name}/$DeadLetterQueue"
        assert not t.get("isSessionsEnabled")  # dead-letter sub-queues are not session-enabled


def test_every_setting_a_binding_names_is_in_the_sample(functions):
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for fn in functions.values():
        for binding in json.loads(fn.get_function_json())["bindings"]:
            if "connection" in binding:
                assert binding["connection"] in sample, (fn.get_function_name(), binding["connection"])
            for value in binding.values():
                if isinstance(value, str) and value.startswith("%") and value.endswith("%"):
                    assert value.strip("%") in sample, (fn.get_function_name(), value)
