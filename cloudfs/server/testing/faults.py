"""Fault injection for tests: latency, HTTP 5xx, dropped connections, forced
token expiry and a low capacity.  Only present with ``--faults``.

A *rule* applies to requests whose path matches ``path_regex`` (all API
paths when unset), optionally only to the next ``count`` matching requests.
For each such request: sleep ``latency_s``; with probability ``error_rate``
answer ``error_status`` (plain text) instead of calling the API; else with
probability ``drop_rate`` drop the connection after ``drop_after_bytes``:
either the response body is cut (the client sees a short read) or the
request body is aborted (the server sees a client disconnect, the client a
reset/short response).  ``drop_target`` picks which; ``auto`` aborts the
request body when there is one; else with probability ``garble_rate`` the
API runs but its answer comes back *garbled*: the first half of its body,
under the original status with a matching Content-Length (a well-framed
response whose JSON does not parse, or a download that is too short: what a
broken proxy or a truncating cache would deliver).  ``reply_delay_s``: the
API runs first, then its answer is held back this long (the server has
acted; a client that gives up meanwhile never learns the outcome).
Randomness comes from ``seed`` if given.

Control channel (outside ``/api``, never subject to faults):
``GET /_cloudfs/faults`` (state + counters), ``POST`` (set the rule),
``DELETE`` (clear everything, counters included),
``POST /_cloudfs/faults/expire-tokens`` (v3: every login session ends),
``POST /_cloudfs/faults/capacity``
with ``{"total": bytes|null}``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from ..common.state import ServerState

CONTROL_PREFIX = "/_cloudfs/"
COUNTERS = ("matched", "latency", "error", "drop_request", "drop_response", "garble", "reply_delay",
            "token_expiry", "capacity")


@dataclass
class FaultRule:
    latency_s: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    drop_rate: float = 0.0
    drop_after_bytes: int = 0
    drop_target: str = "auto"  # auto | response | request
    garble_rate: float = 0.0
    reply_delay_s: float = 0.0
    path_regex: str | None = None
    count: int | None = None
    seed: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        rule = cls(**data)
        if rule.drop_target not in ("auto", "response", "request"):
            raise ValueError("drop_target must be auto, response or request")
        if not 100 <= int(rule.error_status) <= 599:
            raise ValueError("error_status must be an HTTP status")
        if rule.path_regex is not None:
            re.compile(rule.path_regex)
        return rule


@dataclass
class Decision:
    latency: float
    error_status: int | None
    drop: str | None  # "request" | "response" | None
    drop_after: int
    garble: bool = False
    reply_delay: float = 0.0


class FaultState:
    @classmethod
    def configured(cls, state: ServerState) -> FaultState:
        """The injector as the ``--fault-*`` flags set it up (``capacity`` overrides the quota)."""
        faults = cls()
        settings = dict(state.config.fault_settings)
        capacity = settings.pop("capacity", None)
        if capacity is not None:
            state.capacity_override = int(capacity)
        if settings:
            faults.set(FaultRule.from_json(settings))
        return faults

    def __init__(self) -> None:
        self.rule: FaultRule | None = None
        self.remaining: int | None = None
        self.rng = random.Random()
        self._pattern: re.Pattern[str] | None = None
        self.stats: Counter[str] = Counter()

    def set(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.count
        self._pattern = re.compile(rule.path_regex) if rule.path_regex else None
        self.rng = random.Random(rule.seed)

    def clear_rule(self) -> None:
        self.rule = None
        self.remaining = None
        self._pattern = None

    def decide(self, path: str, has_body: bool) -> Decision | None:
        rule = self.rule
        if rule is None:
            return None
        if self._pattern is not None and not self._pattern.search(path):
            return None
        if self.remaining is not None:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
        self.stats["matched"] += 1
        error = rule.error_status if rule.error_rate > 0 and self.rng.random() < rule.error_rate else None
        drop = None
        if error is None and rule.drop_rate > 0 and self.rng.random() < rule.drop_rate:
            drop = rule.drop_target
            if drop == "auto":
                drop = "request" if has_body else "response"
        garble = (error is None and drop is None and rule.garble_rate > 0
                  and self.rng.random() < rule.garble_rate)
        return Decision(float(rule.latency_s), error, drop, int(rule.drop_after_bytes), garble,
                        float(rule.reply_delay_s))

    def snapshot(self, state: ServerState) -> dict[str, Any]:
        stats = {key: self.stats.get(key, 0) for key in COUNTERS}
        return {"rule": asdict(self.rule) if self.rule else None, "remaining": self.remaining,
                "stats": stats, "capacity_override": state.capacity_override}


class _Dropped(Exception):
    pass


class FaultMiddleware:
    """ASGI wrapper applying the current rule to every non-control request."""

    def __init__(self, app: Any, faults: FaultState) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}
        has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        decision = self.faults.decide(scope["path"], has_body)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.latency > 0:
            self.faults.stats["latency"] += 1
            await trio.sleep(decision.latency)
        if decision.error_status is not None:
            self.faults.stats["error"] += 1
            await _drain(receive)
            await Response("injected fault\n", status_code=decision.error_status,
                           media_type="text/plain")(scope, receive, send)
            return
        if decision.drop == "request":
            await self._drop_request(scope, receive, send, decision.drop_after)
        elif decision.drop == "response":
            await self._drop_response(scope, receive, send, decision.drop_after)
        elif decision.garble:
            await self._garble(scope, receive, send)
        elif decision.reply_delay > 0:
            await self._delay_reply(scope, receive, send, decision.reply_delay)
        else:
            await self.app(scope, receive, send)

    async def _garble(self, scope: Any, receive: Any, send: Any) -> None:
        # the whole answer is buffered (test-sized), then half of it goes out
        # with a Content-Length that matches what is sent: well framed, wrong
        start: dict[str, Any] = {}
        body = bytearray()

        async def collect(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, collect)
        if not start:
            return
        cut = bytes(body[: len(body) // 2])  # always shorter (never a same-length substitution)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        self.faults.stats["garble"] += 1
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": cut, "more_body": False})

    async def _delay_reply(self, scope: Any, receive: Any, send: Any, delay: float) -> None:
        async def late_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.faults.stats["reply_delay"] += 1
                await trio.sleep(delay)
            await send(message)

        await self.app(scope, receive, late_send)

    async def _drop_request(self, scope: Any, receive: Any, send: Any, after: int) -> None:
        seen = 0
        cut = False

        async def cut_receive() -> dict[str, Any]:
            nonlocal seen, cut
            if cut:
                return {"type": "http.disconnect"}  # what the app sees of a dropped client
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if seen + len(body) > after or not message.get("more_body", False) and after == 0:
                    cut = True
                    self.faults.stats["drop_request"] += 1
                    return {"type": "http.request", "body": body[:max(after - seen, 0)], "more_body": True} \
                        if after > seen else {"type": "http.disconnect"}
                seen += len(body)
            return message

        async def swallow(message: dict[str, Any]) -> None:
            if not cut:
                await send(message)

        await self.app(scope, cut_receive, swallow)
        if cut:
            # Headers promising a body that never comes: the connection is closed
            # without a complete response.  (The unread rest of the request body is
            # consumed by app.DrainBody first: hypercorn cannot drop it unread.)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"1")]})

    async def _drop_response(self, scope: Any, receive: Any, send: Any, after: int) -> None:
        sent = 0

        async def cut_send(message: dict[str, Any]) -> None:
            nonlocal sent
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            if sent + len(body) > after or (not message.get("more_body", False) and after == 0):
                part = body[:max(after - sent, 0)]
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
                self.faults.stats["drop_response"] += 1
                raise _Dropped
            sent += len(body)
            await send(message)

        try:
            await self.app(scope, receive, cut_send)
        except _Dropped:
            return  # returning mid-body makes the server close the connection


async def _drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def control_routes(state: ServerState, faults: FaultState,
                   end_sessions: Callable[[], None] | None = None) -> list[Route]:
    """The control channel; ``end_sessions`` ends every login session of a dialect
    that has sessions instead of tokens (v3)."""

    async def faults_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(faults.snapshot(state))
        if request.method == "DELETE":
            faults.clear_rule()
            faults.stats.clear()
            state.capacity_override = None
            state.tokens.clear_expiry()
            return JSONResponse(faults.snapshot(state))
        try:
            rule = FaultRule.from_json(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError, re.error) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        faults.set(rule)
        return JSONResponse(faults.snapshot(state))

    async def expire_tokens(request: Request) -> Response:
        state.tokens.expire_all()
        if end_sessions is not None:  # v3 has no tokens: every login session ends instead
            end_sessions()
        faults.stats["token_expiry"] += 1
        return JSONResponse(faults.snapshot(state))

    async def capacity(request: Request) -> Response:
        try:
            total = json.loads(await request.body() or b"{}").get("total")
            if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
                raise ValueError("total must be a non-negative integer or null")
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        state.capacity_override = total
        if total is not None:
            faults.stats["capacity"] += 1
        return JSONResponse(faults.snapshot(state))

    return [Route("/_cloudfs/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
            Route("/_cloudfs/faults/expire-tokens", expire_tokens, methods=["POST"]),
            Route("/_cloudfs/faults/capacity", capacity, methods=["POST"])]
