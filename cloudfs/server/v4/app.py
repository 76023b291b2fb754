"""The v4 Starlette application: routing, per-request context, error rendering.

Routing mimics gin: an unknown path or a known path with the wrong method is
a plain-text ``404 page not found``.  For every ``/api/v4`` request the
dispatcher assigns a correlation id (or adopts a valid
``X-Cr-Correlation-Id``), resolves the current user from ``Authorization:
Bearer`` (a bad or expired token means anonymous; a refresh token used as
access token is 40020), calls the handler and renders any error as an HTTP
200 envelope.  Also the trash collector cron that runs beside it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..common import ids
from ..common.binding import BindError
from ..common.goformat import plain_404
from . import errors as E
from .envelope import api_response, error_envelope, param_error_envelope
from .fileops import collect_trash
from .routes import ROUTES, Handler
from .state import Ctx, V4State

log = logging.getLogger("cloudfs.server")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _correlation_id(request: Request) -> str:
    raw = request.headers.get("x-cr-correlation-id", "")
    try:
        parsed = uuid.UUID(raw)
        if parsed.int:
            return str(parsed)
    except ValueError:
        pass
    return str(uuid.uuid4())


def _current_user(state: V4State, request: Request, cid: str) -> tuple[Any, Response | None]:
    """middleware.CurrentUser: (user or None, error response to send instead)."""
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer Cr "):
        return None, None  # node-to-node HMAC credential, not a user token
    token = header.removeprefix("Bearer ")
    if not token:
        return None, None
    claims = state.tokens.verify_access(token)
    if claims is None:
        return None, None  # expired / forged / malformed: anonymous, as Cloudreve does
    if claims.get("token_type") != "access":
        return None, api_response(error_envelope(E.AppError(E.CREDENTIAL_INVALID, "Invalid token type"), cid))
    uid = state.codec.decode(str(claims.get("sub", "")), ids.USER)
    if uid is None:
        return None, api_response(error_envelope(E.AppError(E.NOT_FOUND, "User not found"), cid))
    user = state.db.user_by_id(uid)
    if user is None or user.status != "active":
        return None, api_response(error_envelope(E.AppError(E.DB_ERROR, "failed to get login user"), cid))
    return user, None


def make_endpoint(state: V4State, handlers: dict[str, Handler]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return plain_404()  # gin does not answer 405
        cid = _correlation_id(request)
        user, refused = _current_user(state, request, cid)
        if refused is not None:
            return refused
        ctx = Ctx(state, user, cid, str(request.base_url).rstrip("/"),
                  client_id=request.headers.get("x-cr-client-id", ""))
        try:
            return await handler(ctx, request, **request.path_params)
        except BindError as exc:
            return api_response(param_error_envelope(exc.msg))
        except (E.AppError, E.Wrapped, E.PlainError, E.AggregateError) as exc:
            return api_response(error_envelope(exc, cid))
    return endpoint


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await plain_404()(scope, receive, send)


def build_app(state: V4State, extra_routes: list[Route]) -> Starlette:
    """The ``/api/v4`` app; ``extra_routes`` (the fault-control channel) go after the API's."""
    routes: list[Any] = [Route(path, make_endpoint(state, handlers), methods=ALL_METHODS)
                         for path, handlers in ROUTES]
    routes += extra_routes
    app = Starlette(routes=routes)
    app.router.default = _not_found
    app.state.server = state
    return app


async def housekeeping(state: V4State) -> None:
    """What runs beside the app: the trash collector and the change feed's timers."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect_trash_forever, state)
        nursery.start_soon(state.events.run)


async def collect_trash_forever(state: V4State, period: float = 600.0) -> None:
    """Cloudreve's trash collector cron: purge items past their retention (7 days)."""
    while True:
        try:
            collect_trash(state)
        except Exception:  # a failed sweep must not take the server down
            log.exception("trash collection failed")
        await trio.sleep(period)
