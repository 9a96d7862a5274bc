"""Traces to Application Insights, switched on by ``DUALSYNC_TELEMETRY_ENABLED``.

The engine records spans through the OpenTelemetry API only. Until :func:`configure_telemetry` installs
the Azure Monitor distro (once, when the function app is imported), the API's default provider makes
every span a no-op, so code paths are the same with telemetry on or off.

Span attributes name *what* was handled (map, integration key or record id, side, attempt, outcome),
never row contents: a notification carries no row data and nothing here reads any.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from shared.settings import PREFIX, SettingsError

if TYPE_CHECKING:
    from shared.events.notification import ChangeNotification
    from shared.settings import Settings

TRACER = "dualsync"
SYNC_SPAN = "dualsync.sync"
CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"

AttributeValue = str | bool | int | float

_configured = False


def configure_telemetry(settings: Settings) -> bool:
    """Install Azure Monitor OpenTelemetry once, if telemetry is enabled; returns whether it is on.

    Raises :class:`SettingsError` when telemetry is enabled without a connection string, so start-up
    names the missing setting instead of the exporter failing later.
    """
    global _configured
    if not settings.telemetry_enabled or _configured:
        return _configured
    if not os.environ.get(CONNECTION_STRING):
        raise SettingsError([f"{CONNECTION_STRING}: required when {PREFIX}TELEMETRY_ENABLED=true"])
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor()
    _configured = True
    return True


def _clean(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    # OpenTelemetry takes primitives only; None means "not known" and is left out.
    return {k: v if isinstance(v, AttributeValue) else str(v) for k, v in attributes.items() if v is not None}


@contextmanager
def span(name: str, **attributes: object) -> Iterator[Span]:
    """A span around a unit of work (a no-op span while telemetry is off). An exception escaping the
    block is recorded on the span and marks it failed."""
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def notification_attributes(note: ChangeNotification) -> dict[str, AttributeValue]:
    """What identifies a notification: its record, side and attempt (no row data). The map is the
    span's own (the subscription's), even when a misrouted notification names another."""
    return _clean({
        "dualsync.key": note.record,
        "dualsync.side": note.source.value,
        "dualsync.attempt": note.attempt,
        "dualsync.operation": note.operation.value,
        "dualsync.origin": note.origin.value,
    })


def record_outcome(current: Span, outcome: object, *, failed: bool) -> None:
    """Outcome type and classification on the span; a failure marks the span as failed."""
    classification = getattr(outcome, "classification", None)
    current.set_attributes(_clean({
        "dualsync.outcome": type(outcome).__name__.lower(),
        "dualsync.classification": getattr(classification, "value", classification),
    }))
    if failed:
        current.set_status(Status(StatusCode.ERROR))
