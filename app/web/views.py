"""Health, readiness, metrics, customer state and explain.

`/customers/{id}` and `/explain` are answered by the worker that owns the
customer's partition; any worker can be asked and forwards the request.
Both expose customer data, so they require the bearer token when one is set.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.engine import (
    CustomerState,
    Intent,
    Policy,
    decide,
    decode_intent,
    decode_state,
)
from app.engine.times import format_us
from app.errors import RecordError
from app.settings import Settings
from app.streams.handler import RecordHandler

logger = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Tact-Forwarded"


def register_views(
    app: Any, settings: Settings, policy: Policy, table: Any, handler: RecordHandler
) -> None:
    def is_ready() -> bool:
        return handler.is_recovered and not app.rebalancing

    def unauthorized(web: Any, request: Request) -> Response | None:
        if settings.api_token is None:
            return None
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.api_token}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return error(web, 401, "missing or wrong bearer token")

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        if is_ready():
            return web.json({"status": "ready"})
        return web.json({"status": "recovering"}, status=503)

    @app.page("/metrics")
    async def metrics_page(web: View, request: Request) -> aiohttp_web.Response:
        # aiohttp refuses a charset inside content_type; set the header whole.
        return aiohttp_web.Response(
            body=generate_latest(metrics.REGISTRY),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    @app.page("/customers/{customer_id}")
    @app.table_route(table=table, match_info="customer_id")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        denied = unauthorized(web, request)
        if denied is not None:
            return denied
        stored = table.get(customer_id.encode())
        if stored is None:
            return error(web, 404, f"no state for customer {customer_id!r}")
        return web.bytes(
            orjson.dumps(state_view(decode_state(stored))),
            content_type="application/json",
        )

    class Explain(View):
        async def post(self, request: Request) -> Response:
            denied = unauthorized(self, request)
            if denied is not None:
                return denied
            body = await request.read()
            try:
                intent = decode_intent(body, handler.limits)
            except RecordError as exc:
                return error(self, 400, f"{exc.kind}: {exc.message}")
            owner = app.router.key_store(table.name, intent.customer_id.encode())
            if _ident(owner) != _ident(app.conf.canonical_url):
                if request.headers.get(FORWARDED_HEADER):
                    return error(self, 503, "partition ownership is moving; retry")
                return await forward(request, owner, body)
            stored = table.get(intent.customer_id.encode())
            state = (
                decode_state(stored)
                if stored is not None
                else CustomerState.empty(intent.customer_id)
            )
            now = datetime.now(UTC)
            step = decide(state, intent, now, policy)
            return self.bytes(
                orjson.dumps(explanation(step, now)), content_type="application/json"
            )

    async def forward(request: Request, owner: Any, body: bytes) -> Response:
        url = request.url.with_host(owner.host).with_port(int(owner.port))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        headers[FORWARDED_HEADER] = "1"
        async with app.http_client.post(url, data=body, headers=headers) as answer:
            payload = await answer.read()
            forwarded: Response = app.web.bytes(
                payload, content_type="application/json", status=answer.status
            )
            return forwarded

    app.page("/explain")(Explain)


def explanation(step: Any, now: datetime) -> dict[str, Any]:
    """The decision an intent would get now; a held intent says until when."""
    if step.decisions:
        decision = step.decisions[-1].to_dict()
        return {"held": False, "decision": decision}
    due = step.state.next_due
    return {
        "held": True,
        "decision": None,
        "held_until": due.isoformat() if due else None,
        "detail": "the intent waits (settle window or send_at) and is decided then",
        "asked_at": now.isoformat(),
    }


def error(web: Any, status: int, message: str) -> Response:
    response: Response = web.json({"status": status, "error": message}, status=status)
    return response


def _ident(url: Any) -> tuple[str, int]:
    return (str(url.host), int(url.port))


def state_view(value: Any) -> Any:
    """A customer's state as readable JSON: field names as in the engine,
    microsecond times (fields ending in ``_us``) as RFC 3339 strings."""
    if isinstance(value, Intent):
        return value.raw
    names = _field_names(value)
    if names is not None:
        view: dict[str, Any] = {}
        for name in names:
            item = getattr(value, name)
            if name.endswith("_us") and (item is None or isinstance(item, int)):
                stem = name[: -len("_us")]
                shown = None if item is None else format_us(item)
                view[stem if stem == "at" else f"{stem}_at"] = shown
            else:
                view[name] = state_view(item)
        return view
    if isinstance(value, Mapping):
        return {_key(k): state_view(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [state_view(item) for item in value]
    return value


def _field_names(value: Any) -> tuple[str, ...] | None:
    """Field names of a dataclass or named tuple; None for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(spec.name for spec in dataclasses.fields(value))
    fields: tuple[str, ...] | None = getattr(type(value), "_fields", None)
    return fields if isinstance(value, tuple) else None


def _key(key: Any) -> str:
    return ":".join(map(str, key)) if isinstance(key, tuple) else str(key)
