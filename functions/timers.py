"""Polling timers per map: Dataverse change tracking and Finance watermark pulls (catch missed events)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
