"""Entry point the Azure Functions host imports: the app and its blueprints.

Settings and the catalog load here, once, so a missing setting or a broken map stops start-up with
a message naming the problem instead of failing later inside a function.
"""

from __future__ import annotations

import azure.functions as func

from functions import blueprints
from shared.runtime import get_runtime
from shared.telemetry import configure_telemetry

# Telemetry first, so spans from the first invocation on are exported (no-op unless enabled).
configure_telemetry(get_runtime().settings)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in blueprints():
    app.register_functions(blueprint)
