"""Distributed initial sync: one queue-triggered function processes work items (legal entity, key range)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
