"""Azure Functions blueprints: thin triggers over the engine in ``shared/``."""

from __future__ import annotations

import azure.functions as func


def blueprints() -> list[func.Blueprint]:
    """Every blueprint the app registers, in a stable order."""
    from functions import health, sync, webhooks

    return [health.bp, sync.bp, webhooks.bp]
