"""The Starlette application: routing, per-request context, error rendering.

Routing mimics gin: an unknown path or a known path with the wrong method is
a plain-text ``404 page not found``.  For every ``/api/v4`` request the
dispatcher assigns a correlation id (or adopts a valid
``X-Cr-Correlation-Id``), resolves the current user from ``Authorization:
Bearer`` (a bad or expired token means anonymous; a refresh token used as
access token is 40020), calls the handler and renders any error as an HTTP
200 envelope.  The fault-control endpoints are mounted only with ``--faults``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors as E
from . import ids
from .binding import BindError
from .envelope import api_response, error_envelope, param_error_envelope, plain_404
from .routes import ROUTES, Handler
from .state import Ctx, ServerState

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


def _current_user(state: ServerState, request: Request, cid: str) -> tuple[Any, Response | None]:
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


def make_endpoint(state: ServerState, handlers: dict[str, Handler]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return plain_404()  # gin does not answer 405
        cid = _correlation_id(request)
        user, refused = _current_user(state, request, cid)
        if refused is not None:
            return refused
        ctx = Ctx(state, user, cid, str(request.base_url).rstrip("/"))
        try:
            return await handler(ctx, request, **request.path_params)
        except BindError as exc:
            return api_response(param_error_envelope(exc.msg))
        except (E.AppError, E.Wrapped, E.PlainError, E.AggregateError) as exc:
            return api_response(error_envelope(exc, cid))
    return endpoint


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await plain_404()(scope, receive, send)


def build_app(state: ServerState) -> Starlette:
    routes: list[Any] = [Route(path, make_endpoint(state, handlers), methods=ALL_METHODS)
                         for path, handlers in ROUTES]
    if state.config.faults:
        from .faults import control_routes

        routes += control_routes(state)
    app = Starlette(routes=routes)
    app.router.default = _not_found
    app.state.server = state
    return app


class DrainBody:
    """Read what is left of a request body once the app is done with it.

    Hypercorn hands body chunks to the app through a bounded queue; if an app
    answers without reading a large body, hypercorn blocks on that queue and the
    connection hangs (Cloudreve drains such bodies too: ``request.BlackHole``).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        finished = False

        async def tracked() -> dict[str, Any]:
            nonlocal finished
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        try:
            await self.app(scope, tracked, send)
        finally:
            while not finished:
                await tracked()


def wrap_app(state: ServerState) -> Any:
    """The ASGI app to serve: the Starlette app (behind the fault injector if enabled)."""
    if state.config.dialect == "v3":
        from .v3app import build_v3_app

        app: Any = build_v3_app(state)
    elif state.config.dialect == "koodrive":
        from .koodrive.app import build_koodrive_app

        app = build_koodrive_app(state)
    else:
        app = build_app(state)
    if state.config.faults:
        from .faults import FaultMiddleware

        app = FaultMiddleware(app, state)
    return DrainBody(app)
