"""Ingress queues: Dataverse Service Bus service endpoint and Finance events delivered by Service Bus.

They run the same parsing and routing as the HTTP triggers and publish session-keyed notifications.
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
