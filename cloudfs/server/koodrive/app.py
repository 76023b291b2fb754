"""The KooDrive dialect's application: routes, the request pipeline, envelopes
and the emulator's control endpoints.

Pipeline of an API request (``/koodrive/ose/v1/...``): ``X-Traceid`` check,
then (except login/refresh) authentication (:mod:`.auth`), the JSON body,
the handler; its fields go into ``{"code": 0, "msg": "success", ...}``.  The
type of ``code`` follows what each endpoint's reference page shows (table
``CODE_IS_STRING``; switch ``code_as``).  An unknown path or method is the
API gateway's 404 ``APIGW.0101``.  Object URLs (``/obs/...``) answer like
object storage.

Control endpoints (outside the API, never subject to faults): ``GET
/_cloudfs/ping`` always; with ``--faults`` also the shared ``/_cloudfs/faults``
ones (``expire-tokens`` expires KooDrive's access tokens here) plus
``/_cloudfs/koodrive/switches`` (GET, POST a JSON object, DELETE = defaults)
and ``POST /_cloudfs/koodrive/expire-urls`` (every URL handed out so far
answers 403 "Request has expired").
"""

from __future__ import annotations

import collections
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..db import User
from ..state import ServerState
from . import auth, downloads, files, jobs, session, space
from . import errors as E
from . import uploads as upload_handlers
from .context import KooCtx
from .jobstore import Jobs
from .runtime import KooRuntime
from .switches import Switches
from .uploadstore import Uploads

log = logging.getLogger("cloudfs.server.koodrive")
P = "/koodrive/ose/v1"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[..., Awaitable[dict[str, Any]]]

#: endpoints whose reference page types ``code`` as String (the others show Integer
#: or nothing: the seeds' usage pages show Integer; CreateJob's page shows String)
CODE_IS_STRING = {"create_job", "job_detail", "list_jobs", "cancel_job"}


class KooJSON(JSONResponse):
    media_type = "application/json;charset=UTF-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def _code_is_string(rt: KooRuntime, name: str) -> bool:
    mode = rt.switches.code_as
    return mode == "string" or (mode == "page" and name in CODE_IS_STRING)


class Throttle:
    """The gateway's rate limit (switch ``rate_limit``): a one-second sliding window."""

    def __init__(self) -> None:
        self.times: collections.deque[float] = collections.deque()

    def allow(self, per_second: float) -> bool:
        if per_second <= 0:
            return True
        now = time.monotonic()
        while self.times and self.times[0] <= now - 1.0:
            self.times.popleft()
        if len(self.times) >= per_second:
            return False
        self.times.append(now)
        return True


def throttled() -> Response:
    return KooJSON({"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached",
                    "code": "APIGW.0308", "msg": "The throttling threshold has been reached"}, status_code=429)


def gateway_404() -> Response:
    return KooJSON({"error_code": "APIGW.0101", "error_msg": "The API does not exist or has not been published "
                    "in the environment", "code": "APIGW.0101", "msg": "The API does not exist"}, status_code=404)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if request.method in ("GET", "HEAD") or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise E.bad("the body is not JSON") from None
    if not isinstance(value, dict):
        raise E.bad("the body must be a JSON object")
    return value


async def authenticate(rt: KooRuntime, request: Request) -> User:
    """The user a request acts for, or a KooError (see :mod:`.auth`)."""
    header = request.headers.get("authorization", "")
    is_hmac = header.startswith("HMAC-SHA256")
    token = None if is_hmac else auth.bearer_token(header)
    if not is_hmac and token is None:
        raise E.unauthorized("Authorization is missing or not Bearer")
    auth.check_x_date(request.headers.get("x-date"))
    key = request.headers.get("x-user-id")
    if not key:
        raise E.auth_failed("X-User-Id is missing")
    user = rt.user_by_key(key)
    if user is None:
        raise E.auth_failed("X-User-Id is unknown")
    if is_hmac:
        if not rt.switches.app_auth:
            raise E.auth_failed("app authentication is not accepted")
        cred = auth.parse_hmac(header)
        if cred.app_id != rt.app_id:
            raise E.auth_failed("unknown AppId")
        headers = {k.lower(): v for k, v in request.headers.items()}
        expected = auth.signature(rt.app_secret, request.method, request.url.path, request.url.query, headers,
                                  cred.signed_headers, await request.body(), rt.switches.payload_hash)
        if not hmac.compare_digest(expected, cred.signature):
            raise E.auth_failed("signature mismatch")
        return user
    sw = rt.switches
    with rt.state.db.tx():
        uid = rt.tokens.user_of(token or "", "access", sw.token_ttl if sw.token_sliding else None)
    if uid is None:
        raise E.unauthorized("the token is invalid or expired")
    if uid != user.id:
        raise E.unauthorized("the token does not belong to X-User-Id")
    return user


def endpoint(rt: KooRuntime, jobs: Jobs, uploads: Uploads, methods: dict[str, tuple[str, Handler, bool]],
             throttle: Throttle) -> Callable[[Request], Any]:
    async def serve(request: Request) -> Response:
        spec = methods.get(request.method)
        if spec is None:
            return gateway_404()
        if not throttle.allow(rt.switches.rate_limit):
            return throttled()
        name, handler, needs_auth = spec
        as_string = _code_is_string(rt, name)
        try:
            auth.check_trace_id(request.headers.get("x-traceid"))
            user = await authenticate(rt, request) if needs_auth else None
            body = await _json_body(request)
            payload = await handler(KooCtx(rt, jobs, uploads, user, request, body), **request.path_params)
        except E.KooError as exc:
            return KooJSON(E.body(exc, as_string), status_code=exc.status)
        return KooJSON({"code": "0" if as_string else 0, "msg": "success", **payload})
    return serve


ROUTES: list[tuple[str, dict[str, tuple[str, Handler, bool]]]] = [
    (P + "/auth/login", {"POST": ("login", session.login, False)}),
    (P + "/auth/refreshToken", {"POST": ("refresh", session.refresh, False)}),
    (P + "/files/create", {"POST": ("create_file", upload_handlers.create, True)}),
    (P + "/files/complete", {"POST": ("complete_file", upload_handlers.complete, True)}),
    (P + "/files/download", {"POST": ("download", downloads.download_urls, True)}),
    (P + "/files/multipart/uploadUrl", {"POST": ("upload_url", upload_handlers.upload_urls, True)}),
    (P + "/files/rename/{file_id}", {"POST": ("rename", files.rename, True)}),
    (P + "/files/{file_id}/detail", {"POST": ("detail", files.detail, True)}),
    (P + "/files/{type}", {"POST": ("list", files.list_files, True)}),
    (P + "/directory", {"POST": ("directory", files.create_directory, True)}),
    (P + "/jobs", {"POST": ("create_job", jobs.create_job, True), "GET": ("list_jobs", jobs.list_jobs, True)}),
    (P + "/cancel", {"POST": ("cancel_job", jobs.cancel_job, True)}),
    (P + "/space/usage/quota", {"GET": ("usage_quota", space.usage_by_quota, True)}),
    (P + "/space/usage/user", {"POST": ("usage_user", space.usage_by_user, True)}),
    (P + "/space/usage/overview", {"GET": ("usage_overview", space.usage_overview, True)}),
    (P + "/space/{owner_id}", {"GET": ("space", space.get_space, True)}),
    (P + "/{job_id}", {"GET": ("job_detail", jobs.job_detail, True)}),
]


def _object_routes(rt: KooRuntime, uploads: Uploads) -> list[Route]:
    async def get_object(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return downloads.obs_error("MethodNotAllowed", "The specified method is not allowed.", 405)
        return await downloads.serve_object(rt, request, request.path_params["key"])

    async def put_part(request: Request) -> Response:
        if request.method != "PUT":
            return downloads.obs_error("MethodNotAllowed", "The specified method is not allowed.", 405)
        return await upload_handlers.put_part(rt, uploads, request, request.path_params["upload_id"],
                                              request.path_params["number"])

    return [Route(downloads.DOWNLOAD_PREFIX + "{key}", get_object, methods=ALL_METHODS),
            Route(upload_handlers.UPLOAD_PREFIX + "{upload_id}/{number}", put_part, methods=ALL_METHODS)]


def _control_routes(rt: KooRuntime, state: ServerState) -> list[Route]:
    async def ping(request: Request) -> Response:
        return JSONResponse({"code": 0, "dialect": "koodrive"})

    routes = [Route("/_cloudfs/ping", ping, methods=["GET"])]
    if not state.config.faults:
        return routes
    from ..faults import control_routes

    shared = control_routes(state)
    shared_faults = next(r for r in shared if r.path == "/_cloudfs/faults")
    faults = state.faults
    assert faults is not None

    async def switches(request: Request) -> Response:
        if request.method == "DELETE":
            rt.switches = Switches()
            rt.switches.update(dict(state.config.dialect_options).get("switches", {}))
        elif request.method == "POST":
            try:
                values = json.loads(await request.body() or b"{}")
                if not isinstance(values, dict):
                    raise ValueError("a JSON object of switches")
                rt.switches.update(values)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(rt.switches.snapshot())

    async def expire_urls(request: Request) -> Response:
        rt.presigner.expire_all()
        faults.stats["url_expiry"] += 1
        return JSONResponse(faults.snapshot(state))

    async def expire_tokens(request: Request) -> Response:
        with state.db.tx():
            rt.tokens.expire_all()
        faults.stats["token_expiry"] += 1
        return JSONResponse(faults.snapshot(state))

    async def clear(request: Request) -> Response:
        rt.switches = Switches()
        rt.switches.update(dict(state.config.dialect_options).get("switches", {}))
        return await shared_faults.endpoint(request)

    return routes + [
        Route("/_cloudfs/koodrive/switches", switches, methods=["GET", "POST", "DELETE"]),
        Route("/_cloudfs/koodrive/expire-urls", expire_urls, methods=["POST"]),
        Route("/_cloudfs/faults/expire-tokens", expire_tokens, methods=["POST"]),
        Route("/_cloudfs/faults", clear, methods=["DELETE"]),
        *shared,
    ]


def build_koodrive_app(state: ServerState) -> Starlette:
    rt = KooRuntime(state)
    state.koodrive = rt
    jobs, uploads = Jobs(rt), Uploads(rt)
    routes: list[Any] = _control_routes(rt, state) + _object_routes(rt, uploads)
    throttle = Throttle()
    routes += [Route(path, endpoint(rt, jobs, uploads, methods, throttle), methods=ALL_METHODS)
               for path, methods in ROUTES]
    app = Starlette(routes=routes)

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await gateway_404()(scope, receive, send)

    app.router.default = not_found
    return app
