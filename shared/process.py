"""What a process builds once from its settings, and how a tool that hosts the app again forgets it.

The function app builds its settings, catalog, sync service, pull service and operations once per worker
process (``get_settings``, ``get_runtime``, ``get_service``, ...). A tool that starts the app again in the
same process with other settings (the sandbox, the chaos run, tests) must forget all of them together:
forgetting only some leaves a service that writes to the last run's emulators, broker or state store, and
module-level ``asyncio.Lock`` objects bound to the last run's event loop.
"""

from __future__ import annotations


def forget_built_services() -> None:
    """Drop every process-wide object built from settings; the next use builds it from the current ones.
    Connections of the dropped objects are not closed here: they belong to the event loop that made them."""
    from shared import ops_http
    from shared.pull.service import reset_pull_service
    from shared.runtime import get_runtime
    from shared.settings import get_settings
    from shared.sync.factory import reset_service

    get_settings.cache_clear()
    get_runtime.cache_clear()
    reset_service()
    reset_pull_service()
    ops_http.reset_operations()
