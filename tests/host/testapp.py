"""A small function app with one of each trigger the dev host runs, recording what it receives."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

TOPIC = "host-test-changes"
SETTINGS = {"HOST_TEST_TOPIC": TOPIC, "HOST_TEST_OUT_QUEUE": "host-test-out", "HOST_TEST_WORK": "host-test-work"}


@dataclass
class Record:
    """What the functions saw; written from worker threads and the loop."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    orders: list[tuple[str | None, str, int]] = field(default_factory=list)  # session, body, delivery
    dead: list[dict[str, Any]] = field(default_factory=list)
    work: list[tuple[str, str]] = field(default_factory=list)  # body, thread name
    ticks: list[tuple[float, bool]] = field(default_factory=list)
    active_sessions: set[str] = field(default_factory=set)
    overlaps: int = 0  # a session handled by two invocations at once (must stay 0)
    release: threading.Event = field(default_factory=threading.Event)

    def add(self, name: str, item: Any) -> None:
        with self.lock:
            getattr(self, name).append(item)


def build_app(record: Record) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hello {req.route_params['name']}")

    @app.function_name("items")
    @app.route(route="items/{id:int}", methods=["GET", "POST"])
    @app.service_bus_queue_output(arg_name="out", queue_name="%HOST_TEST_OUT_QUEUE%", connection="SB")
    async def items(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        seen = {"method": req.method, "route": dict(req.route_params), "params": dict(req.params),
                "body": req.get_body().decode(), "header": req.headers.get("x-test"), "url": req.url}
        if req.method == "POST":
            out.set(json.dumps({"item": req.route_params["id"]}))
        return func.HttpResponse(json.dumps(seen), status_code=201 if req.method == "POST" else 200,
                                 mimetype="application/json", headers={"x-served-by": "items"})

    @app.route(route="admin/op", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def admin_op(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"function": context.function_name}), mimetype="application/json")

    @app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail that must not reach the caller")

    @app.function_name("orders")
    @app.service_bus_topic_trigger(arg_name="msg", topic_name="%HOST_TEST_TOPIC%", subscription_name="orders",
                                   connection="SB", is_sessions_enabled=True)
    async def orders(msg: func.ServiceBusMessage) -> None:
        session = msg.session_id or ""
        with record.lock:
            if session in record.active_sessions:
                record.overlaps += 1
            record.active_sessions.add(session)
        try:
            body = msg.get_body().decode()
            await asyncio.sleep(0.005)  # give another invocation of the same session a chance to overlap
            record.add("orders", (msg.session_id, body, msg.delivery_count))
            if body.startswith("fail"):
                raise ValueError(f"cannot handle {body}")
            if body.startswith("slow"):
                await asyncio.to_thread(record.release.wait, 30)
        finally:
            with record.lock:
                record.active_sessions.discard(session)

    @app.function_name("orders_dead_letters")
    @app.service_bus_topic_trigger(arg_name="msg", topic_name="%HOST_TEST_TOPIC%",
                                   subscription_name="orders/$DeadLetterQueue", connection="SB")
    def orders_dead_letters(msg: func.ServiceBusMessage) -> None:
        props = msg.user_properties
        record.add("dead", {"body": msg.get_body().decode(), "reason": props.get("DeadLetterReason"),
                            "description": props.get("DeadLetterErrorDescription"),
                            "delivery_count": msg.delivery_count, "session": msg.session_id})

    @app.function_name("work")
    @app.service_bus_queue_trigger(arg_name="item", queue_name="%HOST_TEST_WORK%", connection="SB")
    def work(item: func.ServiceBusMessage) -> None:
        record.add("work", (item.get_body().decode(), threading.current_thread().name))

    @app.function_name("tick")
    @app.timer_trigger(arg_name="timer", schedule="* * * * * *", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        record.add("ticks", (time.time(), timer.past_due))

    return app
