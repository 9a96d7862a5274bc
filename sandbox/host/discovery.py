"""What the host runs: the app's functions read from ``app.get_functions()``, bindings resolved.

Each function's binding JSON (the same the real host reads) gives its trigger and outputs; ``%NAME%``
values are replaced from the app settings. A function the dev host cannot run is listed with the
reason instead of stopping the others, as the real host does with a function that fails to index.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import azure.functions as func

from .appsettings import AppSettings, UnresolvedSettingError
from .keys import AuthLevel

DEAD_LETTER_SUFFIX = "/$deadletterqueue"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class Kind(StrEnum):
    HTTP = "http"
    SERVICE_BUS = "serviceBus"
    TIMER = "timer"


@dataclass(frozen=True)
class OutputBinding:
    name: str  # argument name, or "$return"
    type: str
    queue: str | None = None  # Service Bus outputs: a queue, or a topic
    topic: str | None = None


@dataclass(frozen=True)
class HostedFunction:
    name: str
    kind: Kind
    trigger: dict[str, Any]  # the trigger binding, settings resolved
    user_function: Callable[..., Any]
    outputs: tuple[OutputBinding, ...] = ()
    context_arg: str | None = None
    retry_policy: dict[str, Any] | None = None
    # HTTP
    auth_level: AuthLevel = AuthLevel.FUNCTION
    route: str | None = None
    methods: tuple[str, ...] = ()
    # Service Bus: queue, or topic + subscription; ``dead_letter`` = the entity's dead-letter queue
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None
    dead_letter: bool = False
    sessions: bool = False
    many: bool = False
    # timer
    schedule: str | None = None
    run_on_startup: bool = False

    @property
    def trigger_arg(self) -> str:
        return str(self.trigger["name"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def entity(self) -> str:
        """The broker entity consumed (``queue`` or ``topic/Subscriptions/sub``, no dead-letter suffix)."""
        if self.queue is not None:
            return self.queue
        return f"{self.topic}/Subscriptions/{self.subscription}"

    @property
    def source(self) -> str:
        """Where messages are received from, dead-letter suffix included."""
        return self.entity + (DEAD_LETTER_SUFFIX if self.dead_letter else "")

    def describe(self, route_prefix: str = "api") -> str:
        if self.kind is Kind.HTTP:
            path = "/".join(p for p in (route_prefix.strip("/"), self.route) if p)
            return f"{'|'.join(self.methods)} /{path} ({self.auth_level.value})"
        if self.kind is Kind.TIMER:
            return f"timer {self.schedule!r}" + (" run on startup" if self.run_on_startup else "")
        extra = [x for x, on in (("sessions", self.sessions), ("batch", self.many)) if on]
        return f"serviceBus {self.source}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass
class Inventory:
    functions: list[HostedFunction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def of_kind(self, kind: Kind) -> list[HostedFunction]:
        return [f for f in self.functions if f.kind is kind]


def _strip_dead_letter(name: str) -> tuple[str, bool]:
    if name.lower().endswith(DEAD_LETTER_SUFFIX):
        return name[: -len(DEAD_LETTER_SUFFIX)], True
    return name, False


def _context_arg(fn: Callable[..., Any], used: set[str]) -> str | None:
    """The parameter the worker fills with the invocation context (named ``context`` or so typed)."""
    for p in inspect.signature(fn).parameters.values():
        if p.name in used:
            continue
        if p.name == "context" or p.annotation is func.Context or p.annotation in ("func.Context", "Context"):
            return p.name
    return None


def _build(fn: Any, settings: AppSettings) -> HostedFunction | Skipped:
    name = fn.get_function_name()
    data = json.loads(fn.get_function_json())
    bindings = [{k: settings.resolve(v, name) for k, v in b.items()} for b in data["bindings"]]
    trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
    if trigger is None:
        return Skipped(name, "no trigger binding")
    outputs = tuple(
        OutputBinding(b["name"], b["type"], b.get("queueName"), b.get("topicName"))
        for b in bindings if b.get("direction") == "OUT" and b.get("type") != "http"
    )
    unsupported = [o for o in outputs if o.type != "serviceBus"]
    if unsupported:
        return Skipped(name, f"output binding type {unsupported[0].type!r} is not supported by the dev host")
    inputs = [b for b in bindings if b.get("direction") == "IN" and b is not trigger]
    if inputs:
        return Skipped(name, f"input binding type {inputs[0].get('type')!r} is not supported by the dev host")
    user = fn.get_user_function()
    used = {str(b["name"]) for b in bindings}
    common: dict[str, Any] = {
        "name": name, "trigger": trigger, "user_function": user, "outputs": outputs,
        "context_arg": _context_arg(user, used), "retry_policy": fn.get_settings_dict("retry_policy"),
    }
    kind = trigger["type"]
    if kind == "httpTrigger":
        methods = tuple(str(m).upper() for m in (trigger.get("methods") or ALL_METHODS))
        return HostedFunction(kind=Kind.HTTP, auth_level=AuthLevel.parse(trigger.get("authLevel")),
                              route=str(trigger.get("route") or name).strip("/"), methods=methods, **common)
    if kind == "serviceBusTrigger":
        many = str(trigger.get("cardinality", "ONE")).upper() == "MANY"
        sessions = bool(trigger.get("isSessionsEnabled"))
        if "queueName" in trigger:
            queue, dead = _strip_dead_letter(str(trigger["queueName"]))
            return HostedFunction(kind=Kind.SERVICE_BUS, queue=queue, dead_letter=dead, sessions=sessions,
                                  many=many, **common)
        subscription, dead = _strip_dead_letter(str(trigger["subscriptionName"]))
        return HostedFunction(kind=Kind.SERVICE_BUS, topic=str(trigger["topicName"]), subscription=subscription,
                              dead_letter=dead, sessions=sessions, many=many, **common)
    if kind == "timerTrigger":
        return HostedFunction(kind=Kind.TIMER, schedule=str(trigger["schedule"]),
                              run_on_startup=bool(trigger.get("runOnStartup")), **common)
    return Skipped(name, f"trigger type {kind!r} is not supported by the dev host")


def _functions(app: func.FunctionApp) -> list[Any]:
    # get_functions() refuses a second call on the same app (it remembers names it validated); an app
    # already indexed (by a test fixture, say) is read from its builders, which return the same objects.
    if getattr(app, "functions_bindings", None):
        return [builder.build(app.auth_level) for builder in app._function_builders]
    return list(app.get_functions())


def discover(app: func.FunctionApp, settings: AppSettings | None = None) -> Inventory:
    """Read ``app``'s functions and resolve their bindings against the app settings."""
    settings = settings or AppSettings()
    inventory = Inventory()
    for fn in _functions(app):
        name = fn.get_function_name()
        if settings.disabled(name):
            inventory.skipped.append(Skipped(name, "disabled by AzureWebJobs.<name>.Disabled"))
            continue
        try:
            built = _build(fn, settings)
        except UnresolvedSettingError as exc:
            built = Skipped(name, str(exc))
        if isinstance(built, Skipped):
            inventory.skipped.append(built)
        else:
            inventory.functions.append(built)
    return inventory
