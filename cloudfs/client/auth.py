"""Keeping the client logged in, whatever the server's kind of login:

* :class:`BearerAuth` (v4): bearer tokens, refreshed before they expire and
  once more when the server turns one down;
* :class:`CookieAuth` (v3): a session cookie, renewed (re-issued by the
  server) well before it expires, and replaced by a new password login when
  the server says the session is gone, since v3 has no refresh tokens.

Dialect-independent: each is given the dialect's functions (refresh,
``relogin`` when a password is at hand, ``revoke``) and a ``persist`` hook
that writes each new credential to the token store.  :class:`Authenticator`
is what the HTTP layer asks for headers.

Also the public face of the token store and of log redaction, which the CLI
imports from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import trio

from cloudfs.client.redact import RedactingFilter, redact, register_secret
from cloudfs.client.tokenstore import StoredLogin, TokenStore, default_path
from cloudfs.client.cloudreve_codes import CloudreveError
from cloudfs.errors import AuthenticationError, TransportError

__all__ = [
    "Authenticator", "BearerAuth", "CookieAuth", "RedactingFilter", "SessionCookie", "StoredLogin", "TokenStore",
    "Tokens", "default_path", "redact", "register_secret",
]

log = logging.getLogger(__name__)

#: refresh this long before the access token expires (at most; a short-lived
#: token is refreshed when 80% of its life has passed)
REFRESH_MARGIN_S = 60.0
REFRESH_MARGIN_FRACTION = 0.2


class Authenticator(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """Headers that authenticate the next request (renewing first if due)."""
        ...

    async def rejected(self, sent: Mapping[str, str]) -> None:
        """The server refused ``sent`` as not logged in: renew (once per
        rejected credential, however many requests carried it).  Raises
        ``AuthenticationError`` if that is impossible."""
        ...

    async def revoke(self) -> None:
        """End this login on the server (logout)."""
        ...


@dataclass(frozen=True, slots=True)
class Tokens:
    """An access/refresh token pair; expiries in local-clock Unix seconds.
    Values are hidden from repr() and registered for log redaction."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires: float
    refresh_expires: float
    #: local time the pair was received
    issued_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        register_secret(self.access_token)
        register_secret(self.refresh_token)

    def refresh_due(self, now: float) -> bool:
        lifetime = max(self.access_expires - self.issued_at, 0.0)
        margin = min(REFRESH_MARGIN_S, lifetime * REFRESH_MARGIN_FRACTION)
        return now >= self.access_expires - margin


def keeps_current_token(tokens: Tokens, exc: TransportError, *, proactive: bool, what: str) -> bool:
    """After a refresh that never reached the server (``exc``): whether the
    current access token is used meanwhile (a renewal ahead of its expiry;
    the next request tries again), said in the log.  If not, the caller
    raises ``exc``: a rejected token with no way to renew it."""
    if proactive and time.time() < tokens.access_expires:
        log.warning("could not refresh the login to %s (%s); using the current token meanwhile", what, exc)
        return True
    return False


Credential = TypeVar("Credential")


class _Renewing(Generic[Credential]):
    """What both kinds of login share.  Renewals are serialised by a lock
    and keyed by the credential that prompted them (the caller checks it
    under the lock), so a burst of parallel requests that all met an expired
    one causes one renewal, not one each.  Each new credential is saved; a
    login that cannot be renewed is made again with the password, if one
    is at hand."""

    def __init__(self, *, relogin: Callable[[], Awaitable[Credential]] | None,
                 persist: Callable[[Credential], Awaitable[None]] | None, what: str) -> None:
        self._relogin = relogin
        self._persist = persist
        self._what = what
        self._lock = trio.Lock()
        #: renewals done (refreshes and new logins), for tests and statistics
        self.renewals = 0

    def _use(self, fresh: Credential) -> None:
        raise NotImplementedError

    async def _adopt(self, fresh: Credential) -> None:
        self._use(fresh)
        self.renewals += 1
        log.debug("login to %s renewed", self._what)
        if self._persist is not None:
            try:
                await self._persist(fresh)
            except OSError as exc:
                log.warning("could not save the renewed login: %s", exc)

    async def _login_again(self, why: str) -> Credential:
        if self._relogin is None:
            raise AuthenticationError(
                f"the login to {self._what} is no longer valid ({why}); log in again with the password"
            ) from None
        log.info("logging in to %s again: %s", self._what, why)
        return await self._relogin()


RefreshFn = Callable[[str], Awaitable[Tokens]]
ReloginFn = Callable[[], Awaitable[Tokens]]
PersistFn = Callable[[Tokens], Awaitable[None]]
RevokeFn = Callable[[str], Awaitable[None]]


class BearerAuth(_Renewing[Tokens]):
    """``Authorization: Bearer`` with automatic renewal: a refresh before
    the access token expires, and once more when the server turns one down."""

    def __init__(
        self,
        tokens: Tokens,
        *,
        refresh: RefreshFn,
        relogin: ReloginFn | None = None,
        persist: PersistFn | None = None,
        revoke: RevokeFn | None = None,
        what: str = "server",
    ) -> None:
        super().__init__(relogin=relogin, persist=persist, what=what)
        self.tokens = tokens
        self._refresh = refresh
        self._revoke = revoke

    def _use(self, fresh: Tokens) -> None:
        self.tokens = fresh

    async def headers(self) -> Mapping[str, str]:
        tokens = self.tokens
        if tokens.refresh_due(time.time()):
            await self._renew(tokens.access_token, proactive=True)
        return {"Authorization": f"Bearer {self.tokens.access_token}"}

    async def rejected(self, sent: Mapping[str, str]) -> None:
        used = sent.get("Authorization", "").removeprefix("Bearer ")
        await self._renew(used, proactive=False)

    async def revoke(self) -> None:
        """Revoke the refresh chain (access tokens already issued expire on their own)."""
        if self._revoke is not None:
            await self._revoke(self.tokens.refresh_token)

    async def _renew(self, stale_access: str, *, proactive: bool) -> None:
        async with self._lock:
            if self.tokens.access_token != stale_access:
                return  # another task renewed while we waited
            try:
                tokens = await self._refresh(self.tokens.refresh_token)
            except CloudreveError as exc:
                # the refresh token is invalid, revoked or expired (40020)
                tokens = await self._login_again(f"the refresh failed: {exc}")
            except TransportError as exc:
                if keeps_current_token(self.tokens, exc, proactive=proactive, what=self._what):
                    return
                raise
            await self._adopt(tokens)


# ---- Cloudreve 3: cookie sessions ---------------------------------------------------

#: renew a session cookie once this much of its life has passed, and at least daily
COOKIE_RENEW_FRACTION = 0.5
COOKIE_RENEW_AFTER_S = 86400.0
#: a failed proactive renewal is tried again after this long (not on every request)
COOKIE_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """A login session cookie (Cloudreve 3's ``cloudreve-session``); times in
    local-clock Unix seconds.  The value is a bearer secret: hidden from
    repr() and registered for log redaction."""

    name: str
    value: str = field(repr=False)
    #: when the server (re-)issued it
    issued_at: float
    #: when the server stops accepting it (0 = unknown)
    expires_at: float = 0.0

    def __post_init__(self) -> None:
        register_secret(self.value)

    @property
    def header(self) -> str:
        return f"{self.name}={self.value}"

    def renew_due(self, now: float) -> bool:
        lifetime = self.expires_at - self.issued_at if self.expires_at else 2 * COOKIE_RENEW_AFTER_S
        return now >= self.issued_at + min(COOKIE_RENEW_AFTER_S, max(lifetime, 0.0) * COOKIE_RENEW_FRACTION)

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at


#: the same session with a fresh cookie, or None when the session is no longer logged in
CookieRefreshFn = Callable[[SessionCookie], Awaitable["SessionCookie | None"]]
CookieReloginFn = Callable[[], Awaitable[SessionCookie]]
CookiePersistFn = Callable[[SessionCookie], Awaitable[None]]
CookieRevokeFn = Callable[[SessionCookie], Awaitable[None]]


class CookieAuth(_Renewing[SessionCookie]):
    """``Cookie: <name>=<value>`` with renewal.

    Proactive: once :meth:`SessionCookie.renew_due`, ``refresh`` asks the
    server to re-issue the cookie of the same session (Cloudreve 3 signs a
    timestamp into it and refuses it 30 days later; its session lives 60).
    Reactive: a "login required" answer means the session is gone (expired,
    logged out, server cache lost), which no refresh can undo: log in again
    with the password, or fail with ``AuthenticationError`` without one.
    """

    def __init__(
        self,
        cookie: SessionCookie,
        *,
        refresh: CookieRefreshFn,
        relogin: CookieReloginFn | None = None,
        persist: CookiePersistFn | None = None,
        revoke: CookieRevokeFn | None = None,
        what: str = "server",
    ) -> None:
        super().__init__(relogin=relogin, persist=persist, what=what)
        self.cookie = cookie
        self._refresh = refresh
        self._revoke = revoke
        #: after a failed proactive renewal, the next one is not tried before this
        self._retry_at = 0.0

    def _use(self, fresh: SessionCookie) -> None:
        self.cookie = fresh

    async def headers(self) -> Mapping[str, str]:
        now = time.time()
        if now >= self._retry_at and self.cookie.renew_due(now):
            await self._renew(self.cookie.value, proactive=True)
        return {"Cookie": self.cookie.header}

    async def rejected(self, sent: Mapping[str, str]) -> None:
        used = sent.get("Cookie", "").partition("=")[2]
        await self._renew(used, proactive=False)

    async def revoke(self) -> None:
        if self._revoke is not None:
            await self._revoke(self.cookie)

    async def _renew(self, stale_value: str, *, proactive: bool) -> None:
        async with self._lock:
            if self.cookie.value != stale_value:
                return  # another task renewed while we waited
            fresh: SessionCookie | None = None
            if proactive:
                try:
                    fresh = await self._refresh(self.cookie)
                except (TransportError, CloudreveError) as exc:
                    if not self.cookie.expired(time.time()):
                        # the current cookie still works: try again on a later request
                        log.warning("could not renew the session cookie for %s (%s); using the current one "
                                    "meanwhile", self._what, exc)
                        self._retry_at = time.time() + COOKIE_RETRY_S
                        return
                    raise
            if fresh is None:
                fresh = await self._login_again(
                    "the session ended" if proactive else "the server no longer accepts the session")
            await self._adopt(fresh)

