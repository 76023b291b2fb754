"""Logging in to KooDrive, in this order:

1. an enterprise app key (AppId + AppSecret, acting for a user id): from the
   TOML file named by ``CLOUDFS_KOODRIVE_APP_KEY_FILE`` (``app_id``,
   ``app_secret``, optional ``user_id``) or ``CLOUDFS_KOODRIVE_APP_ID`` and
   ``CLOUDFS_KOODRIVE_APP_SECRET``; else from the config file's remote
   (``app_key_file``, or ``app_id`` and ``app_secret``: :func:`configure_app_key`);
   the user id is the file's or the login name given (``--user``);
2. a pasted bearer token (``CLOUDFS_KOODRIVE_TOKEN``, for the user id given as
   ``--user``): it lasts 20 minutes, sliding, and a warning says so;
3. the carrier login kept in the token store (refresh token, last access
   token and user id, in this backend's own ``credential`` shape);
4. the carrier login with account and password (``POST /auth/login``).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import trio

from cloudfs.client.auth import Tokens
from cloudfs.client.koodrive.auth import AppAuth, CarrierAuth, KooAuth, PastedAuth
from cloudfs.client.koodrive.codes import KooDriveError
from cloudfs.client.koodrive.wire import Wire
from cloudfs.client.login import save_new_login
from cloudfs.client.redact import register_secret
from cloudfs.client.tokenstore import Store, StoredLogin
from cloudfs.errors import AuthenticationError

log = logging.getLogger(__name__)

APP_KEY_FILE = "CLOUDFS_KOODRIVE_APP_KEY_FILE"
APP_ID, APP_SECRET = "CLOUDFS_KOODRIVE_APP_ID", "CLOUDFS_KOODRIVE_APP_SECRET"
TOKEN = "CLOUDFS_KOODRIVE_TOKEN"
#: the carrier login's ``x-hw-agentName``
AGENT = "cloudfs"


def _tokens(body: dict[str, Any]) -> tuple[Tokens, str]:
    data = body.get("data") or {}
    info = data.get("sessionInfo") or {}
    access, refresh = str(info.get("accessToken") or ""), str(info.get("refreshToken") or "")
    if not access:
        raise AuthenticationError("the KooDrive login answer holds no access token")
    now = time.time()
    tokens = Tokens(access_token=access, refresh_token=refresh, access_expires=now + float(info.get("expiresIn") or 1800),
                    refresh_expires=0.0, issued_at=now)
    return tokens, str((data.get("userInfo") or {}).get("userId") or "")


async def password_login(wire: Wire, account: str, password: str) -> tuple[Tokens, str]:
    try:
        body = await wire.call("POST", "/auth/login", idempotent=True, what="login", auth=False,
                               headers={"x-hw-agentName": AGENT},
                               json_body={"account": account, "authType": "1", "password": password,
                                          "captchaToken": ""})
    except (KooDriveError, AuthenticationError) as exc:
        raise AuthenticationError(f"login as {account} refused: {exc}") from None
    tokens, user_id = _tokens(body)
    if not user_id:
        raise AuthenticationError("the KooDrive login answer holds no user id")
    return tokens, user_id


async def refresh(wire: Wire, current: Tokens) -> Tokens:
    body = await wire.call("POST", "/auth/refreshToken", idempotent=True, what="token refresh", auth=False,
                           headers={"Authorization": f"AT+{current.access_token}"},
                           json_body={"refreshToken": current.refresh_token})
    fresh, _ = _tokens(body)
    if not fresh.refresh_token:  # the chain is not rotated: keep the one we have
        fresh = Tokens(fresh.access_token, current.refresh_token, fresh.access_expires, 0.0, fresh.issued_at)
    return fresh


#: the app key of the config file's remote (see :func:`configure_app_key`)
_configured: dict[str, str] = {}


def configure_app_key(*, app_key_file: str | None = None, app_id: str | None = None,
                      app_secret: str | None = None) -> None:
    """An app key from the config file, used when the environment names none
    (the environment is the more specific: set for one command)."""
    _configured.clear()
    if app_key_file:
        _configured["app_key_file"] = app_key_file
    if app_id and app_secret:
        register_secret(app_secret, lasting=True)
        _configured.update(app_id=app_id, app_secret=app_secret)


def needs_no_password() -> bool:
    """Whether a login needs no password: an app key or a pasted token is given."""
    return bool(os.environ.get(APP_KEY_FILE) or (os.environ.get(APP_ID) and os.environ.get(APP_SECRET))
                or os.environ.get(TOKEN) or _configured)


def _key_file(path: str) -> dict[str, Any]:
    try:
        with open(Path(path).expanduser(), "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthenticationError(f"cannot read the KooDrive app key file {path}: {exc}") from None


def _app_key(account: str | None) -> AppAuth | None:
    values: dict[str, Any] = {}
    key_file = os.environ.get(APP_KEY_FILE)
    if key_file:
        values = _key_file(key_file)
    elif os.environ.get(APP_ID) and os.environ.get(APP_SECRET):
        values = {"app_id": os.environ[APP_ID], "app_secret": os.environ[APP_SECRET]}
    elif "app_key_file" in _configured:
        values = _key_file(_configured["app_key_file"])
    elif _configured:
        values = dict(_configured)
    if not values:
        return None
    user_id = str(values.get("user_id") or account or "")
    if not values.get("app_id") or not values.get("app_secret") or not user_id:
        raise AuthenticationError("a KooDrive app key needs app_id, app_secret and the user id to act for")
    return AppAuth(str(values["app_id"]), str(values["app_secret"]), user_id)


async def log_in(wire: Wire, url: str, *, account: str | None, password: str | None, store: Store | None,
                 resume: bool) -> KooAuth:
    register_secret(password, lasting=True)
    app = _app_key(account)
    if app is not None:
        log.info("signing requests with the app key %s for user %s", app.app_id, app.user_id)
        return app
    pasted = os.environ.get(TOKEN)
    if pasted:
        if not account:
            raise AuthenticationError("a pasted KooDrive token needs the user id it belongs to (--user)")
        return PastedAuth(pasted, account)
    tokens: Tokens | None = None
    user_id = ""
    user = account
    if store is not None and resume:
        stored = await trio.to_thread.run_sync(store.load, url, account)
        if stored is not None and stored.credential.get("refresh_token"):
            kept = stored.credential
            old = Tokens(kept.get("access_token", ""), kept["refresh_token"], 0.0, 0.0)
            try:
                tokens = await refresh(wire, old)
                user_id, user = kept.get("user_id", ""), stored.user
                log.info("resumed the stored KooDrive login of %s at %s", stored.user, url)
            except (KooDriveError, AuthenticationError) as exc:
                log.info("the stored login of %s at %s is no longer valid (%s)", stored.user, url, exc)
                tokens = None
    if tokens is None or not user_id:
        if not account or not password:
            raise AuthenticationError(f"no valid stored login for {url}: an account and password are needed")
        tokens, user_id = await password_login(wire, account, password)
        user = account
    assert user is not None
    who, uid = user, user_id

    async def persist(new: Tokens) -> None:
        if store is None:
            return
        login = StoredLogin(url=url, user=who, refresh_token="", saved_at=time.time(), credential={
            "refresh_token": new.refresh_token, "access_token": new.access_token, "user_id": uid})
        await trio.to_thread.run_sync(store.save, login)

    relogin = functools.partial(password_login, wire, account, password) if account and password else None
    await save_new_login(persist, tokens)

    async def renew(current: Tokens) -> Tokens:
        return await refresh(wire, current)

    return CarrierAuth(tokens, user_id, refresh=renew, relogin=relogin, persist=persist, what=url)
