"""Logging in: :func:`token_login` for a token dialect (v4), :func:`session_login` for a
session dialect (v3).

Token dialect (v4): a stored refresh token first, else the
password (and a 2FA code if asked); the resulting :class:`BearerAuth`
writes every new token pair back to the token store.  With ``resume=False``
the stored login is not tried: the password is used, and only a login it
succeeds with replaces the stored one (a wrong password leaves it alone).

The password, when given, is kept in memory for the client's lifetime so an
unrecoverable refresh failure (revoked chain, expired refresh token) can log
in again without bothering the user; it is registered for log redaction.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from cloudfs.client.auth import BearerAuth, CookieAuth, CookieReloginFn, ReloginFn, SessionCookie, Tokens
from cloudfs.client.dialect import SessionDialect, TokenDialect
from cloudfs.client.redact import register_secret
from cloudfs.client.tokenstore import Store, StoredLogin
from cloudfs.client.v3_shapes import COOKIE_NAME
from cloudfs.client.cloudreve_codes import CloudreveError
from cloudfs.errors import AuthenticationError

log = logging.getLogger(__name__)

Credential = TypeVar("Credential")


def _password_needed(url: str, store: Store | None) -> AuthenticationError:
    """Neither a stored login that still works nor a password to log in with."""
    return AuthenticationError(f"no valid stored login for {url}: an email and password are needed"
                               if store is not None else f"{url}: an email and password are needed")


async def save_new_login(persist: Callable[[Credential], Awaitable[None]], credential: Credential) -> None:
    """Save a login just made.  A token store that cannot be written costs
    the next start a password, not this one its login: a warning."""
    try:
        await persist(credential)
    except OSError as exc:
        log.warning("could not save the login to the token store: %s", exc)


async def token_login(
    dialect: TokenDialect,
    url: str,
    *,
    email: str | None,
    password: str | None,
    otp: Callable[[], str] | None,
    store: Store | None,
    resume: bool = True,
) -> BearerAuth:
    register_secret(password, lasting=True)
    tokens: Tokens | None = None
    user = email
    if store is not None and resume:
        stored = await trio.to_thread.run_sync(store.load, url, email)
        if stored is not None:
            try:
                tokens = await dialect.refresh(stored.refresh_token)
                user = stored.user
                log.info("resumed the stored login of %s at %s", stored.user, url)
            except CloudreveError as exc:
                log.info("the stored login of %s at %s is no longer valid (%s)", stored.user, url, exc)
    if tokens is None:
        if not email or not password:
            raise _password_needed(url, store)
        tokens = await dialect.password_login(email, password, otp)
    assert user is not None

    async def persist(new: Tokens) -> None:
        if store is None:
            return
        # only the refresh token is kept on disk: a start refreshes anyway
        login = StoredLogin(url=url, user=user, refresh_token=new.refresh_token,
                            refresh_expires=new.refresh_expires, saved_at=time.time())
        await trio.to_thread.run_sync(store.save, login)

    relogin: ReloginFn | None = (
        functools.partial(dialect.password_login, email, password, otp) if email and password else None)
    await save_new_login(persist, tokens)
    return BearerAuth(tokens, refresh=dialect.refresh, relogin=relogin, persist=persist, what=url)


# ---- Cloudreve 3: cookie sessions -------------------------------------------------------

async def session_login(
    dialect: SessionDialect,
    url: str,
    *,
    email: str | None,
    password: str | None,
    otp: Callable[[], str] | None,
    store: Store | None,
    resume: bool = True,
) -> CookieAuth:
    """Log in a session dialect (v3): the stored session cookie first (if the
    server still knows its session, re-issued fresh), else the password.
    The resulting :class:`CookieAuth` writes each new cookie to the store;
    the password itself is never stored."""
    register_secret(password, lasting=True)
    cookie: SessionCookie | None = None
    user = email
    if store is not None and resume:
        stored = await trio.to_thread.run_sync(store.load, url, email)
        if stored is not None and stored.session_cookie:
            saved = SessionCookie(COOKIE_NAME, stored.session_cookie, issued_at=stored.saved_at,
                                  expires_at=stored.session_expires)
            try:
                cookie = await dialect.resume(saved, stored.user)
            except CloudreveError as exc:
                log.info("the stored session of %s at %s is no longer valid (%s)", stored.user, url, exc)
            if cookie is not None:
                user = stored.user
                log.info("resumed the stored session of %s at %s", stored.user, url)
            else:
                log.info("the stored session of %s at %s has ended", stored.user, url)
    if cookie is None:
        if not email or not password:
            raise _password_needed(url, store)
        cookie = await dialect.password_login(email, password, otp)
    assert user is not None
    who = user

    async def persist(new: SessionCookie) -> None:
        if store is None:
            return
        login = StoredLogin(url=url, user=who, refresh_token="", session_cookie=new.value,
                            session_expires=new.expires_at, saved_at=new.issued_at)
        await trio.to_thread.run_sync(store.save, login)

    relogin: CookieReloginFn | None = (
        functools.partial(dialect.password_login, email, password, otp) if email and password else None)

    async def refresh(current: SessionCookie) -> SessionCookie | None:
        return await dialect.resume(current, who)

    await save_new_login(persist, cookie)
    return CookieAuth(cookie, refresh=refresh, relogin=relogin, persist=persist, revoke=dialect.logout, what=url)
