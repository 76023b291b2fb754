"""The v3 dialect's application: ``/api/v3`` routes as Cloudreve 3.8.3 serves them.

Builds on the per-server :class:`~cloudfs.server.v3.runtime.V3Runtime`: the
gin-like router and request pipeline, the site/user handlers, the JSON shapes
of users and the site config, and the binding specs of every route (``routers/router.go``, ``routers/controllers``,
``service/user`` @3.8.3).

Pipeline of an ``/api/v3`` request, in gin's middleware order: load the
session from the ``cloudreve-session`` cookie, resolve the active user
(``CurrentUser``), ``Cache-Control: private, no-cache``; then per group:
``AuthRequired`` (``{"code":401,"msg":"Login required"}``), ``HashID`` for
``:id`` of the file group (40001 "Failed to parse object ID"), the signature
check of the download route; then binding (40001 messages of
``controllers.ErrorResponse``) and the service.  A saved session adds its
``Set-Cookie``.  Unknown paths and methods are gin's plain-text 404; a path
that only differs by a trailing slash from a route is redirected (301 for
GET, 307 otherwise), e.g. ``GET /api/v3/directory`` -> ``/directory/``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route

from ..common import ids
from ..common.auth import check_password, totp_verify
from ..common.binding import BindError, F, bind_form, bind_json
from ..common.db import User
from ..common.goformat import go_time, plain_404
from . import downloads, fs, uploads
from . import errors as E
from .kv import Session
from .runtime import V3Runtime

log = logging.getLogger("cloudfs.server")
VERSION = "3.8.3"
API = "/api/v3"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
STATUS_CODES = {"active": 0, "inactive": 1, "banned": 2, "overuse_banned": 3}
THEMES = ('{"#3f51b5":{"palette":{"primary":{"main":"#3f51b5"},"secondary":{"main":"#f50057"}}},'
          '"#2196f3":{"palette":{"primary":{"main":"#2196f3"},"secondary":{"main":"#FFC107"}}},'
          '"#673AB7":{"palette":{"primary":{"main":"#673AB7"},"secondary":{"main":"#2196F3"}}},'
          '"#E91E63":{"palette":{"primary":{"main":"#E91E63"},"secondary":{"main":"#42A5F5",'
          '"contrastText":"#fff"}}},"#FF5722":{"palette":{"primary":{"main":"#FF5722"},"secondary":'
          '{"main":"#3F51B5"}}},"#FFC107":{"palette":{"primary":{"main":"#FFC107"},"secondary":'
          '{"main":"#26C6DA"}}},"#8BC34A":{"palette":{"primary":{"main":"#8BC34A","contrastText":"#fff"},'
          '"secondary":{"main":"#FF8A65","contrastText":"#fff"}}},"#009688":{"palette":{"primary":'
          '{"main":"#009688"},"secondary":{"main":"#4DD0E1","contrastText":"#fff"}}},"#607D8B":'
          '{"palette":{"primary":{"main":"#607D8B"},"secondary":{"main":"#F06292"}}},"#795548":'
          '{"palette":{"primary":{"main":"#795548"},"secondary":{"main":"#4CAF50","contrastText":"#fff"}}}}')


@dataclass
class V3Ctx:
    rt: V3Runtime
    user: User | None
    session: Session

    @property
    def me(self) -> User:
        assert self.user is not None  # guaranteed by AuthRequired
        return self.user


Handler = Callable[..., Awaitable[Any]]


# --- JSON shapes ------------------------------------------------------------------------
def user_json(codec: ids.IdCodec, user: User | None) -> dict[str, Any]:
    """``serializer.BuildUser``; None is the anonymous user (group 3 options, GroupID 0)."""
    if user is None:
        group = {"id": 0, "name": "Anonymous", "allowShare": False, "allowRemoteDownload": False,
                 "allowArchiveDownload": False, "shareDownload": True, "compress": False, "webdav": False,
                 "sourceBatch": 0, "advanceDelete": False, "allowWebDAVProxy": False}
        return {"id": codec.user(0), "user_name": "", "nickname": "", "status": 0, "avatar": "",
                "created_at": go_time(None), "preferred_theme": "", "anonymous": True, "group": group,
                "tags": []}
    # the default "User" group of a fresh 3.8.3 install
    group = {"id": 2, "name": "User", "allowShare": True, "allowRemoteDownload": False,
             "allowArchiveDownload": False, "shareDownload": True, "compress": False, "webdav": True,
             "sourceBatch": 10, "advanceDelete": False, "allowWebDAVProxy": False}
    return {"id": codec.user(user.id), "user_name": user.email, "nickname": user.nickname,
            "status": STATUS_CODES.get(user.status, 0), "avatar": "", "created_at": go_time(user.created_at),
            "preferred_theme": "", "anonymous": False, "group": group, "tags": []}


def site_config_json(ctx: V3Ctx) -> dict[str, Any]:
    return {"title": ctx.rt.state.config.site_name, "loginCaptcha": False, "regCaptcha": False,
            "forgetCaptcha": False, "emailActive": False, "themes": THEMES, "defaultTheme": "#3f51b5",
            "home_view_method": "icon", "share_view_method": "list", "authn": False,
            "user": user_json(ctx.rt.state.codec, ctx.user), "captcha_ReCaptchaKey": "defaultKey",
            "captcha_type": "normal", "tcaptcha_captcha_app_id": "", "registerEnabled": True,
            "app_promotion": True, "wopi_exts": None}


# --- binding specs (service structs @3.8.3) ------------------------------------------------
LOGIN = [F("userName", "UserName", required=True, email=True),
         F("Password", "Password", required=True, min=4, max=64)]
TWO_FA = [F("code", "Code", required=True)]
PATH = [F("path", "Path", required=True, min=1, max=65535)]
ITEMS = [F("items", "Items", "strs"), F("dirs", "Dirs", "strs"), F("force", "Force", "bool"),
         F("unlink", "UnlinkOnly", "bool")]
MOVE = [F("src_dir", "SrcDir", required=True, min=1, max=65535), F("src", "Src", "obj", sub=ITEMS),
        F("dst", "Dst", required=True, min=1, max=65535)]
RENAME = [F("src", "Src", "obj", sub=ITEMS), F("new_name", "NewName", required=True, min=1, max=255)]
UPLOAD = [F("path", "Path", required=True), F("size", "Size", "uint", min=0), F("name", "Name", required=True),
          F("policy_id", "PolicyID", required=True), F("last_modified", "LastModified", "int"),
          F("mime_type", "MimeType")]
CHUNK = [F("sessionId", "ID", required=True), F("index", "Index", "int", min=0)]
PROPERTY = [F("trace_root", "TraceRoot", "bool"), F("is_folder", "IsFolder", "bool")]


async def _json(request: Request, fields: list[F]) -> dict[str, Any]:
    return bind_json(await request.body(), fields)


def _decoded(codec: ids.IdCodec, raws: list[str], kind: int) -> list[int]:
    """``ItemIDService.Raw``: undecodable ids are dropped silently."""
    return [i for i in (codec.decode(r, kind) for r in raws) if i is not None]


def _targets(ctx: V3Ctx, src: dict[str, Any]) -> tuple[list[int], list[int]]:
    codec = ctx.rt.state.codec
    return _decoded(codec, src["dirs"] or [], ids.FOLDER), _decoded(codec, src["items"] or [], ids.FILE)


# --- site / user ----------------------------------------------------------------------------
async def site_ping(ctx: V3Ctx, request: Request) -> Any:
    return VERSION


async def site_config(ctx: V3Ctx, request: Request) -> Any:
    ctx.rt.sessions.set(ctx.session, CSRF=True)  # middleware.CSRFInit
    return site_config_json(ctx)


async def login(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, LOGIN)
    state = ctx.rt.state
    user = state.db.user_by_email(args["userName"])
    wrong = E.V3Error(E.CREDENTIAL_INVALID, "Wrong password or email address")
    if user is None:
        raise wrong.with_raw("record not found")
    if not await trio.to_thread.run_sync(check_password, user.password, args["Password"]):
        raise wrong
    if user.status in ("banned", "overuse_banned"):
        raise E.V3Error(E.USER_BANNED, "This account has been blocked")
    if user.status == "inactive":
        raise E.V3Error(E.USER_NOT_ACTIVATED, "This account is not activated")
    if user.otp_secret:
        ctx.rt.sessions.set(ctx.session, **{"2fa_user_id": user.id})
        return E.v3_json(E.envelope(E.NOT_FULLY_SUCCESS))
    ctx.rt.sessions.set(ctx.session, user_id=user.id)
    return user_json(state.codec, user)


async def login_2fa(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, TWO_FA)
    uid = ctx.session.get("2fa_user_id")
    if not isinstance(uid, int):
        raise E.V3Error(E.LOGIN_SESSION_NOT_EXIST, "Login session not exist")
    user = ctx.rt.state.db.user_by_id(uid)
    if user is None or user.status != "active":
        raise E.V3Error(E.USER_NOT_FOUND, "User not found")
    if not totp_verify(user.otp_secret, args["code"]):
        raise E.V3Error(E.TWO_FA_CODE_ERR, "2FA code not correct")
    ctx.rt.sessions.delete(ctx.session, "2fa_user_id")
    ctx.rt.sessions.set(ctx.session, user_id=user.id)
    return user_json(ctx.rt.state.codec, user)


async def sign_out(ctx: V3Ctx, request: Request) -> Any:
    ctx.rt.sessions.delete(ctx.session, "user_id")
    return None


async def user_me(ctx: V3Ctx, request: Request) -> Any:
    return user_json(ctx.rt.state.codec, ctx.me)


async def user_storage(ctx: V3Ctx, request: Request) -> Any:
    state = ctx.rt.state
    total, used = state.capacity_total(), state.db.storage_used(ctx.me.id)
    return {"used": used, "free": max(total - used, 0), "total": total}


# --- explorer ----------------------------------------------------------------------------------
async def list_directory(ctx: V3Ctx, request: Request, path: str = "") -> Any:
    # gin's catch-all parameter keeps the leading slash: /directory/a/b -> "/a/b"
    args = bind_form({"path": "/" + path}, PATH)
    return fs.list_directory(ctx.rt, ctx.me, args["path"])


async def directory_redirect(ctx: V3Ctx, request: Request) -> Any:
    return RedirectResponse(API + "/directory/", status_code=301)


async def create_directory(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, PATH)
    try:
        fs.create_directory(ctx.rt, ctx.me, args["path"])
    except E.V3Error as exc:
        raise E.err(E.CREATE_FOLDER_FAILED, exc.msg, exc) from None
    return None


async def create_file(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, PATH)
    fs.create_file(ctx.rt, ctx.me, args["path"])
    return None


async def delete_objects(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, ITEMS)
    dirs, files = _targets(ctx, args)
    # force/unlink need the group's advance-delete option, which the "User" group lacks
    fs.delete(ctx.rt, ctx.me, dirs, files)
    return None


async def move_objects(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, MOVE)
    dirs, files = _targets(ctx, args["src"])
    fs.move(ctx.rt, ctx.me, dirs, files, args["src_dir"], args["dst"])
    return None


def _one_object(src: dict[str, Any]) -> None:
    if len(src["items"] or []) + len(src["dirs"] or []) > 1:
        raise E.one_object_only()


async def copy_objects(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, MOVE)
    _one_object(args["src"])
    dirs, files = _targets(ctx, args["src"])
    fs.copy(ctx.rt, ctx.me, dirs, files, args["src_dir"], args["dst"])
    return None


async def rename_object(ctx: V3Ctx, request: Request) -> Any:
    args = await _json(request, RENAME)
    _one_object(args["src"])
    dirs, files = _targets(ctx, args["src"])
    fs.rename(ctx.rt, ctx.me, dirs, files, args["new_name"])
    return None


async def property_(ctx: V3Ctx, request: Request, id: str) -> Any:
    params = {k: request.query_params.getlist(k)[0] for k in request.query_params}
    args = bind_form(params, PROPERTY)
    return fs.properties(ctx.rt, ctx.me, id, args["is_folder"], args["trace_root"])


# --- uploads / downloads -----------------------------------------------------------------------
async def create_upload(ctx: V3Ctx, request: Request) -> Any:
    return uploads.create_session(ctx.rt, ctx.me, await _json(request, UPLOAD))


async def upload_chunk(ctx: V3Ctx, request: Request, session_id: str, index: str) -> Any:
    args = bind_form({"sessionId": session_id, "index": index}, CHUNK)
    try:
        await uploads.upload_chunk(ctx.rt, ctx.me, args["sessionId"], args["index"], request)
    except E.V3Error as exc:
        raise E.err(E.UPLOAD_FAILED, exc.msg, exc) from None
    return None


async def cancel_upload(ctx: V3Ctx, request: Request, session_id: str) -> Any:
    uploads.cancel(ctx.rt, ctx.me, session_id)
    return None


async def cancel_all_uploads(ctx: V3Ctx, request: Request) -> Any:
    uploads.cancel_all(ctx.rt, ctx.me)
    return None


async def put_content(ctx: V3Ctx, request: Request, id: int) -> Any:
    await uploads.put_content(ctx.rt, ctx.me, id, request)
    return None


async def download_url(ctx: V3Ctx, request: Request, id: int) -> Any:
    return downloads.create_url(ctx.rt, ctx.me, id)


async def download(ctx: V3Ctx, request: Request, key: str) -> Any:
    return await downloads.serve(ctx.rt, request, key)


# --- routing -----------------------------------------------------------------------------------
@dataclass
class Spec:
    handler: Handler
    auth: bool = True
    #: decode ``:id`` as a FileID first (middleware.HashID of the file group)
    file_id: bool = False
    signed: bool = False


ROUTES: list[tuple[str, dict[str, Spec]]] = [
    ("/site/ping", {"GET": Spec(site_ping, auth=False)}),
    ("/site/config", {"GET": Spec(site_config, auth=False)}),
    ("/user/session", {"POST": Spec(login, auth=False), "DELETE": Spec(sign_out)}),
    ("/user/2fa", {"POST": Spec(login_2fa, auth=False)}),
    ("/user/me", {"GET": Spec(user_me)}),
    ("/user/storage", {"GET": Spec(user_storage)}),
    ("/directory", {"PUT": Spec(create_directory), "GET": Spec(directory_redirect, auth=False)}),
    ("/directory/{path:path}", {"GET": Spec(list_directory)}),
    ("/object", {"DELETE": Spec(delete_objects), "PATCH": Spec(move_objects)}),
    ("/object/copy", {"POST": Spec(copy_objects)}),
    ("/object/rename", {"POST": Spec(rename_object)}),
    ("/object/property/{id}", {"GET": Spec(property_)}),
    ("/file/create", {"POST": Spec(create_file)}),
    ("/file/upload", {"PUT": Spec(create_upload), "DELETE": Spec(cancel_all_uploads)}),
    ("/file/upload/{session_id}", {"DELETE": Spec(cancel_upload)}),
    ("/file/upload/{session_id}/{index}", {"POST": Spec(upload_chunk)}),
    ("/file/update/{id}", {"PUT": Spec(put_content, file_id=True)}),
    ("/file/download/{id}", {"PUT": Spec(download_url, file_id=True),
                             "GET": Spec(download, auth=False, signed=True)}),
]


def _render(rt: V3Runtime, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    return E.ok(result)


def make_endpoint(rt: V3Runtime, specs: dict[str, Spec]) -> Callable[[Request], Any]:
    debug = rt.state.config.debug

    async def endpoint(request: Request) -> Response:
        spec = specs.get(request.method)
        if spec is None:
            return plain_404()  # gin answers no 405
        session = rt.sessions.load(request.cookies.get("cloudreve-session"))
        user = None
        uid = session.get("user_id")
        if isinstance(uid, int):
            candidate = rt.state.db.user_by_id(uid)
            user = candidate if candidate is not None and candidate.status == "active" else None
        ctx = V3Ctx(rt, user, session)
        params = dict(request.path_params)
        try:
            if spec.signed:
                downloads.check_sign(rt, request)
                params = {"key": params.pop("id")}
            if spec.auth and user is None:
                raise E.login_required()
            if spec.file_id:
                fid = rt.state.codec.decode(params["id"], ids.FILE)
                if fid is None:
                    raise E.param_err("Failed to parse object ID")
                params["id"] = fid
            response = _render(rt, await spec.handler(ctx, request, **params))
        except BindError as exc:
            response = E.error_response(E.param_err(exc.msg), debug)
        except E.V3Error as exc:
            response = E.error_response(exc, debug)
        except fs.Panic as exc:
            log.error("v3 handler panic: %s", exc)  # gin.Recovery: bare 500
            response = Response(status_code=500, headers={"Cache-Control": "private, no-cache"})
        if session.set_cookie is not None:
            response.headers.append("Set-Cookie", session.set_cookie)
        await _drain(request)
        return response

    return endpoint


async def _drain(request: Request) -> None:
    """Read what is left of the body before answering (``request.BlackHole``; Go buffers the
    small JSON answer until the handler returns).  Hypercorn closes a keep-alive connection
    whose response ends while the request body is still arriving; draining first keeps it."""
    try:
        async for _ in request.stream():
            pass
    except (ClientDisconnect, RuntimeError):  # gone, or already consumed ("Stream consumed")
        pass


def build_v3_app(rt: V3Runtime, extra_routes: list[Route]) -> Starlette:
    """The ``/api/v3`` app; ``extra_routes`` (the fault-control channel) go after the API's."""
    routes: list[Any] = [Route(API + path, make_endpoint(rt, specs), methods=ALL_METHODS)
                         for path, specs in ROUTES]
    routes += extra_routes
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        """gin's RedirectTrailingSlash, else its NoRoute 404."""
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if path.startswith(API + "/") and path != "/":
            other = path[:-1] if path.endswith("/") else path + "/"
            probe = dict(scope, path=other)
            for route, (_path, specs) in zip(app.router.routes, ROUTES, strict=False):
                if method in specs and route.matches(probe)[0] == Match.FULL:
                    target = other + ("?" + scope["query_string"].decode("latin1")
                                      if scope.get("query_string") else "")
                    await RedirectResponse(target, status_code=301 if method == "GET" else 307)(
                        scope, receive, send)
                    return
        await plain_404()(scope, receive, send)

    app.router.default = not_found
    app.state.server = rt.state
    return app
