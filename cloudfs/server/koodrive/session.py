"""The carrier edition's session APIs: ``POST /auth/login`` and ``POST /auth/refreshToken``.

Login takes ``x-hw-agentName`` and ``{account, authType, password,
captchaToken}``; only ``authType`` "1" (password) is emulated ("2", a
verification code, is refused with 13000102).  Both answer
``data.sessionInfo{accessToken, expiresIn, issuedAt, refreshToken}`` (plus
``data.userInfo`` at login).  A refresh needs ``Authorization: AT+<token>``
(the access token being replaced, expired or not, of the same user) and
``{refreshToken}``.  Wrong credentials or a dead refresh token: HTTP 401.
"""

from __future__ import annotations

from typing import Any

import trio

from ..auth import check_password
from . import errors as E
from .auth import Session
from .context import KooCtx


def _session_json(session: Session) -> dict[str, Any]:
    return {"accessToken": session.access_token, "expiresIn": session.expires_in,
            "issuedAt": session.issued_at_ms, "refreshToken": session.refresh_token}


async def login(kc: KooCtx) -> dict[str, Any]:
    if not kc.request.headers.get("x-hw-agentname"):
        raise E.bad("x-hw-agentName is required")
    body, rt = kc.body, kc.rt
    account, password = body.get("account"), body.get("password")
    if not isinstance(account, str) or not account or not isinstance(password, str):
        raise E.bad("account and password are required")
    if str(body.get("authType", "1")) != "1":
        raise E.bad("only authType 1 (password) is supported")
    user = rt.state.db.user_by_email(account)
    if user is None or user.status != "active" or not await trio.to_thread.run_sync(
            check_password, user.password, password):
        raise E.KooError(E.TOKEN_INVALID, "The account or password is incorrect.", 401)
    sw = rt.switches
    with rt.state.db.tx():
        session = rt.tokens.issue(user.id, sw.token_ttl, sw.refresh_ttl)
    return {"data": {"sessionInfo": _session_json(session),
                     "userInfo": {"userId": rt.key_of(user), "account": user.email,
                                  "nickName": user.nickname}}}


async def refresh(kc: KooCtx) -> dict[str, Any]:
    rt = kc.rt
    header = kc.request.headers.get("authorization", "")
    old = next((header[len(p):].strip() for p in ("AT+", "AT ") if header.startswith(p)), "")
    if not old:
        raise E.unauthorized("Authorization must be AT+{accessToken}")
    token = kc.body.get("refreshToken")
    if not isinstance(token, str) or not token:
        raise E.unauthorized("refreshToken is required")
    uid = rt.tokens.user_of(token, "refresh")
    if uid is None:
        raise E.unauthorized("the refresh token is invalid or expired")
    owner = rt.state.db.conn.execute("SELECT user_id FROM kd_tokens WHERE token=?", (old,)).fetchone()
    if owner is not None and int(owner[0]) != uid:
        raise E.unauthorized("the access token belongs to another user")
    sw = rt.switches
    with rt.state.db.tx():
        if sw.rotate_refresh:
            rt.tokens.revoke(token)
            session = rt.tokens.issue(uid, sw.token_ttl, sw.refresh_ttl)
        else:
            session = rt.tokens.issue(uid, sw.token_ttl, sw.refresh_ttl, refresh=token)
    return {"data": {"sessionInfo": _session_json(session)}}
