"""Azure Functions blueprints: thin triggers over the engine in ``shared/``."""

from __future__ import annotations

import azure.functions as func


def blueprints() -> list[func.Blueprint]:
    """Every blueprint the app registers, in a stable order."""
    from functions import admin, bulk, health, ingress, sync, timers, webhooks

    return [health.bp, sync.bp, webhooks.bp, ingress.bp, timers.bp, admin.bp, bulk.bp]
