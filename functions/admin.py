"""Operator HTTP API (admin auth level): status, pause, resume, errors, replay, dismiss, initial sync."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
