"""HTTP handlers of ``/api/v4``: bind the request, call the service, wrap the answer.

Each handler takes ``(ctx, request, **path_params)`` and returns a Starlette
response.  Binding rules (field names, ``required``/``min``/``max``) are
copied from the Go service structs so binding errors read the same
(``"Uri cannot be empty"``); batch calls refuse more than 3000 URIs with
40074 before doing anything.  Errors raised here are turned into envelopes by
the dispatcher in :mod:`cloudfs.server.app`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..common import ids
from ..common.auth import TokenError, check_password, totp_verify
from ..common.binding import F, bind_form, bind_json
from . import downloads, fileops, metadata, uploads, views
from . import errors as E
from .envelope import api_response, envelope, ok
from .state import VERSION, Ctx

Handler = Callable[..., Awaitable[Response]]


def login_required(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(ctx: Ctx, request: Request, **params: Any) -> Response:
        if ctx.user is None:
            raise E.login_required()
        return await handler(ctx, request, **params)
    return wrapper


async def _json(request: Request, fields: list[F]) -> dict[str, Any]:
    return bind_json(await request.body(), fields)


def _query(request: Request, fields: list[F]) -> dict[str, Any]:
    # url.Values.Get: the first value of a repeated key
    params = {k: request.query_params.getlist(k)[0] for k in request.query_params}
    return bind_form(params, fields)


def _batch(ctx: Ctx, uris: list[str]) -> None:
    limit = ctx.state.config.max_batch
    if len(uris) > limit:
        raise E.AppError(E.TOO_MANY_URIS, f"Maximum allowed batch size: {limit}")


# --- site ---------------------------------------------------------------------
async def site_ping(ctx: Ctx, request: Request) -> Response:
    return ok(VERSION)


async def site_config(ctx: Ctx, request: Request, section: str) -> Response:
    cfg = ctx.state.config
    if section == "login":
        return ok({})  # no captcha, passkeys or registration on this server
    if section == "explorer":
        return ok({"map_provider": "openstreetmap", "max_batch_size": cfg.max_batch,
                   "thumbnail_width": 400, "thumbnail_height": 300})
    if section == "emojis":
        return ok({"emoji_preset": "{}"})
    if section in ("app", "thumb"):
        return ok({})
    return ok({"instance_id": ctx.state.site_id, "title": cfg.site_name, "themes": "{}",
               "default_theme": "#1976d2", "user": views.user(ctx.state.codec, ctx.user),
               "captcha_type": "normal", "app_promotion": True})


# --- sessions -----------------------------------------------------------------
LOGIN = [F("email", "UserName", required=True, email=True),
         F("password", "Password", required=True, min=4, max=128)]
OTP = [F("otp", "OTP", required=True), F("session_id", "SessionID", required=True)]
REFRESH = [F("refresh_token", "RefreshToken", required=True)]
PREPARE = [F("email", "Email", required=True, email=True)]


def _issue(ctx: Ctx, user: Any) -> Response:
    codec = ctx.state.codec
    pair = ctx.state.tokens.issue(codec.user(user.id), user.email, user.password)
    return ok({"user": views.user(codec, user), "token": views.token(pair)})


async def session_prepare(ctx: Ctx, request: Request) -> Response:
    args = _query(request, PREPARE)
    if ctx.state.db.user_by_email(args["email"]) is None:
        raise E.AppError(E.NOT_FOUND, "User not found")
    return ok({"webauthn_enabled": False, "password_enabled": True})


async def login(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, LOGIN)
    user = ctx.state.db.user_by_email(args["email"])
    valid = user is not None and await trio.to_thread.run_sync(check_password, user.password, args["password"])
    if user is None or not valid:
        raise E.AppError(E.INVALID_PASSWORD, "Incorrect password or email address")
    if user.status != "active":
        raise E.AppError(E.USER_BANNED, "This account has been blocked")
    if user.otp_secret:
        return api_response(envelope(E.NOT_FULLY_SUCCESS, ctx.state.two_factor.create(user.id)))
    return _issue(ctx, user)


async def login_2fa(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, OTP)
    uid = ctx.state.two_factor.get(args["session_id"])
    user = ctx.state.db.user_by_id(uid) if uid is not None else None
    if user is None:
        raise E.AppError(E.NOT_FOUND, "Session not found")
    if user.otp_secret and not totp_verify(user.otp_secret, args["otp"]):
        raise E.AppError(E.TWO_FA_CODE_ERR, "Incorrect 2FA code")
    ctx.state.two_factor.delete(args["session_id"])
    return _issue(ctx, user)


async def refresh(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, REFRESH)
    state = ctx.state
    failed = E.AppError(E.CREDENTIAL_INVALID, "Failed to issue token pair")
    try:
        claims = state.tokens.check_refresh(args["refresh_token"])
    except TokenError as exc:
        raise failed.with_error(str(exc)) from None
    uid = state.codec.decode(str(claims.get("sub", "")), ids.USER)
    user = state.db.user_by_id(uid) if uid is not None else None
    if user is None or user.status != "active":
        raise failed.with_error("user not found")
    import base64

    expected = base64.b64encode(state.tokens.state_hash(user.email, user.password)).decode()
    if claims.get("state_hash") != expected:
        raise failed.with_error("invalid refresh token")
    pair = state.tokens.issue(state.codec.user(user.id), user.email, user.password, claims["root_token_id"])
    return ok(views.token(pair))


async def sign_out(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, REFRESH)
    try:
        claims = ctx.state.tokens.claims(args["refresh_token"])
    except TokenError as exc:
        raise E.AppError(E.CREDENTIAL_INVALID, "Failed to parse token", str(exc)) from None
    root = claims.get("root_token_id")
    if isinstance(root, str) and root:
        ctx.state.tokens.revoke_chain(root)
    return ok("")


# --- user -------------------------------------------------------------------------
@login_required
async def user_me(ctx: Ctx, request: Request) -> Response:
    return ok(views.user(ctx.state.codec, ctx.user))


@login_required
async def user_capacity(ctx: Ctx, request: Request) -> Response:
    return ok(fileops.capacity(ctx))


# --- files --------------------------------------------------------------------------
LIST = [F("uri", "Uri", required=True), F("page", "Page", "int", min=0), F("page_size", "PageSize", "int"),
        F("order_by", "OrderBy"), F("order_direction", "OrderDirection"),
        F("next_page_token", "NextPageToken")]
INFO = [F("uri", "Uri"), F("id", "ID"), F("extended", "ExtendedInfo", "bool"),
        F("folder_summary", "FolderSummary", "bool")]
CREATE = [F("uri", "Uri", required=True), F("type", "Type", required=True, oneof=("file", "folder")),
          F("metadata", "Metadata", "strmap"), F("err_on_conflict", "ErrOnConflict", "bool")]
RENAME = [F("uri", "Uri", required=True), F("new_name", "NewName", required=True, min=1, max=255)]
MOVE = [F("uris", "Uris", "strs", required=True, min=1), F("dst", "Dst", required=True),
        F("copy", "Copy", "bool")]
DELETE = [F("uris", "Uris", "strs", required=True, min=1), F("unlink", "UnlinkOnly", "bool"),
          F("skip_soft_delete", "SkipSoftDelete", "bool")]
PATCH = [F("uris", "Uris", "strs", required=True),
         F("patches", "Patches", "objs", required=True,
           sub=[F("key", "Key", required=True), F("value", "Value"),
                F("private", "Private", "bool", ne_true=True), F("remove", "Remove", "bool")])]
UNLOCK = [F("tokens", "Tokens", "strs", required=True, max=16384)]
URL = [F("uris", "Uris", "strs", required=True), F("download", "Download", "bool"),
       F("redirect", "Redirect", "bool"), F("entity", "Entity"),
       F("use_primary_site_url", "UsePrimarySiteURL", "bool"), F("skip_error", "SkipError", "bool"),
       F("archive", "Archive", "bool"), F("no_cache", "NoCache", "bool")]


async def list_files(ctx: Ctx, request: Request) -> Response:
    return ok(fileops.list_files(ctx, _query(request, LIST)))


async def file_info(ctx: Ctx, request: Request) -> Response:
    return ok(fileops.file_info(ctx, _query(request, INFO)))


async def create_file(ctx: Ctx, request: Request) -> Response:
    return ok(fileops.create(ctx, await _json(request, CREATE)))


async def rename_file(ctx: Ctx, request: Request) -> Response:
    return ok(fileops.rename(ctx, await _json(request, RENAME)))


async def move_files(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, MOVE)
    _batch(ctx, args["uris"])
    uris = fileops.parse_uris(args["uris"])
    dst = fileops.parse_uri(args["dst"], "unknown destination uri")
    fileops.move_copy(ctx, uris, dst, args["copy"])
    return ok()


async def delete_files(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, DELETE)
    _batch(ctx, args["uris"])
    uris = fileops.parse_uris(args["uris"])
    if args["unlink"]:
        # the default "User" group has no "advance delete" permission
        raise E.AppError(E.NO_PERMISSION, "advance delete permission is required")
    try:
        fileops.delete(ctx, uris, hard=args["skip_soft_delete"])
    except (E.AppError, E.Wrapped) as exc:
        raise E.wrap("failed to delete file", exc) from None
    return ok()


async def restore_files(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, DELETE)
    _batch(ctx, args["uris"])
    try:
        fileops.restore(ctx, fileops.parse_uris(args["uris"]))
    except (E.AppError, E.Wrapped) as exc:
        raise E.wrap("failed to restore file", exc) from None
    return ok()


async def patch_metadata(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, PATCH)
    _batch(ctx, args["uris"])
    uris = fileops.parse_uris(args["uris"])
    patches = [metadata.Patch(p["key"], p["value"], p["remove"]) for p in args["patches"]]
    fileops.patch_metadata(ctx, uris, patches)
    return ok()


async def force_unlock(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, UNLOCK)
    fileops.force_unlock(ctx, args["tokens"])
    return ok()


@login_required
async def feature_disabled(ctx: Ctx, request: Request) -> Response:
    """Full-text search exists in 4.11+ but is switched off here."""
    raise E.AppError(E.FEATURE_NOT_ENABLED, "This feature is not enabled")


async def file_events(ctx: Ctx, request: Request) -> Response:
    from .eventstream import file_events as stream  # imported on use: the one user of sse-starlette

    return await stream(ctx, request)


async def empty_trash(ctx: Ctx, request: Request) -> Response:
    if ctx.user is None:
        raise E.wrap("failed to empty trash", E.login_required())
    fileops.empty_trash(ctx)
    return ok()


# --- uploads -----------------------------------------------------------------------
UPLOAD = [F("uri", "Uri", required=True), F("size", "Size", "int", min=0),
          F("last_modified", "LastModified", "int"), F("mime_type", "MimeType"), F("policy_id", "PolicyID"),
          F("metadata", "Metadata", "strmap", max=256),
          F("entity_type", "EntityType", oneof=("", "live_photo", "version")),
          F("encryption_supported", "EncryptionSupported", "strs"), F("previous", "Previous")]
CHUNK = [F("sessionId", "ID", required=True), F("index", "Index", "int", min=0)]
CANCEL = [F("id", "ID", required=True), F("uri", "Uri", required=True)]
PUT_CONTENT = [F("uri", "Uri", required=True), F("previous", "Previous")]


async def create_upload(ctx: Ctx, request: Request) -> Response:
    return ok(uploads.create(ctx, await _json(request, UPLOAD)))


async def upload_chunk(ctx: Ctx, request: Request, session_id: str, index: str) -> Response:
    # a refused body is drained by app.DrainBody (Cloudreve: request.BlackHole)
    args = bind_form({"sessionId": session_id, "index": index}, CHUNK)
    await uploads.upload_chunk(ctx, args["sessionId"], args["index"], request)
    return ok()


async def cancel_upload(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, CANCEL)
    uri = fileops.parse_uri(args["uri"])
    uploads.cancel(ctx, uri, args["id"])
    return ok()


async def put_content(ctx: Ctx, request: Request) -> Response:
    args = _query(request, PUT_CONTENT)
    try:
        length = uploads.content_length(request)
    except ValueError as exc:
        raise E.AppError(E.PARAM_ERR, "invalid content length", str(exc)) from None
    if length > ctx.state.config.max_edit_size:
        raise E.too_large()
    uri = fileops.parse_uri(args["uri"])
    return ok(await uploads.put_content(ctx, uri, args["previous"], length, request))


# --- downloads -------------------------------------------------------------------------
async def file_urls(ctx: Ctx, request: Request) -> Response:
    args = await _json(request, URL)
    _batch(ctx, args["uris"])
    uris = fileops.parse_uris(args["uris"])
    result = downloads.entity_urls(ctx, uris, args)
    if args["redirect"] and len(uris) == 1:
        return RedirectResponse(result["urls"][0]["url"], status_code=302)
    return ok(result)


async def content(ctx: Ctx, request: Request, entity: str, speed: str, name: str) -> Response:
    if request.method == "OPTIONS":
        return downloads.preflight(request)
    downloads.check_signature(ctx, request)
    if ctx.state.codec.decode(entity, ids.ENTITY) is None:
        raise E.AppError(E.PARAM_ERR, "Failed to parse object ID")
    args = bind_form({"name": name, "speed": speed}, [F("name", "Name", required=True),
                                                      F("speed", "SpeedLimit", "int")])
    return await downloads.serve_content(ctx, request, entity, args["speed"], args["name"])


ROUTES: list[tuple[str, dict[str, Handler]]] = [
    ("/api/v4/site/ping", {"GET": site_ping}),
    ("/api/v4/site/config/{section}", {"GET": site_config}),
    ("/api/v4/session/token", {"POST": login, "DELETE": sign_out}),
    ("/api/v4/session/token/2fa", {"POST": login_2fa}),
    ("/api/v4/session/token/refresh", {"POST": refresh}),
    ("/api/v4/session/prepare", {"GET": session_prepare}),
    ("/api/v4/user/me", {"GET": user_me}),
    ("/api/v4/user/capacity", {"GET": user_capacity}),
    ("/api/v4/file", {"GET": list_files, "DELETE": delete_files}),
    ("/api/v4/file/info", {"GET": file_info}),
    ("/api/v4/file/events", {"GET": file_events}),
    ("/api/v4/file/search", {"GET": feature_disabled}),
    ("/api/v4/file/create", {"POST": create_file}),
    ("/api/v4/file/rename", {"POST": rename_file}),
    ("/api/v4/file/move", {"POST": move_files}),
    ("/api/v4/file/restore", {"POST": restore_files}),
    ("/api/v4/file/metadata", {"PATCH": patch_metadata}),
    ("/api/v4/file/lock", {"DELETE": force_unlock}),
    ("/api/v4/file/trash", {"DELETE": empty_trash}),
    ("/api/v4/file/upload", {"PUT": create_upload, "DELETE": cancel_upload}),
    ("/api/v4/file/upload/{session_id}/{index}", {"POST": upload_chunk}),
    ("/api/v4/file/url", {"POST": file_urls}),
    ("/api/v4/file/content", {"PUT": put_content}),
    ("/api/v4/file/content/{entity}/{speed}/{name}", {"GET": content, "HEAD": content, "OPTIONS": content}),
]
