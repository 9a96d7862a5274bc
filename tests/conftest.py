"""Suite-wide set-up: settings for importing the function app against local endpoints."""

from __future__ import annotations

import os

# The function app reads settings at import; tests point it at loopback emulators.
os.environ.setdefault("DUALSYNC_DATAVERSE_URL", "http://127.0.0.1:5081")
os.environ.setdefault("DUALSYNC_FINANCE_URL", "http://127.0.0.1:5082")
os.environ.setdefault("DUALSYNC_AUTH_MODE", "static_token")
os.environ.setdefault("DUALSYNC_STATIC_TOKEN", "test-token")


import pytest


@pytest.fixture(scope="session")
def app_functions():
    """The function app's indexed functions by name (get_functions() may run once per app)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


EMULATOR_TOKEN = "t"


@pytest.fixture(scope="session")
def emulators():
    """Both emulators over real HTTP on free loopback ports, for the whole session.
    Tests that use them reset them first (``app.state.emulator.reset()``)."""
    from sandbox import dataverse, finance

    dv, fo = dataverse.start(port=0, token=EMULATOR_TOKEN), finance.start(port=0, token=EMULATOR_TOKEN)
    yield dv, fo
    dv.stop()
    fo.stop()
