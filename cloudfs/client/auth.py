"""Keeping the client logged in: bearer tokens, refreshed before they expire
and once more when the server turns one down.

Dialect-independent: :class:`BearerAuth` is given the dialect's ``refresh``
(refresh token -> new pair) and, when a password is at hand, ``relogin``
functions, and a ``persist`` hook that writes each new pair to the token
store.  :class:`Authenticator` is what the HTTP layer asks for headers; a
cookie-session dialect (v3) would implement it without tokens.

Also the public face of the token store and of log redaction, which the CLI
imports from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import trio

from cloudfs.client.redact import RedactingFilter, redact, register_secret
from cloudfs.client.tokenstore import StoredLogin, TokenStore, default_path
from cloudfs.errors import AuthenticationError, CloudreveError, TransportError

__all__ = [
    "Authenticator", "BearerAuth", "RedactingFilter", "StoredLogin", "TokenStore", "Tokens",
    "default_path", "redact", "register_secret",
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


RefreshFn = Callable[[str], Awaitable[Tokens]]
ReloginFn = Callable[[], Awaitable[Tokens]]
PersistFn = Callable[[Tokens], Awaitable[None]]


class BearerAuth:
    """``Authorization: Bearer`` with automatic renewal.

    Renewals are serialised by a lock and keyed by the token that prompted
    them, so a burst of parallel requests that all met an expired token
    causes one refresh, not one each.
    """

    def __init__(
        self,
        tokens: Tokens,
        *,
        refresh: RefreshFn,
        relogin: ReloginFn | None = None,
        persist: PersistFn | None = None,
        what: str = "server",
    ) -> None:
        self.tokens = tokens
        self._refresh = refresh
        self._relogin = relogin
        self._persist = persist
        self._what = what
        self._lock = trio.Lock()
        #: renewals done, for tests and statistics
        self.renewals = 0

    async def headers(self) -> Mapping[str, str]:
        tokens = self.tokens
        if tokens.refresh_due(time.time()):
            await self._renew(tokens.access_token, proactive=True)
        return {"Authorization": f"Bearer {self.tokens.access_token}"}

    async def rejected(self, sent: Mapping[str, str]) -> None:
        used = sent.get("Authorization", "").removeprefix("Bearer ")
        await self._renew(used, proactive=False)

    async def _renew(self, stale_access: str, *, proactive: bool) -> None:
        async with self._lock:
            if self.tokens.access_token != stale_access:
                return  # another task renewed while we waited
            try:
                tokens = await self._refresh(self.tokens.refresh_token)
            except CloudreveError as exc:
                # the refresh token is invalid, revoked or expired (40020)
                tokens = await self._fall_back(exc)
            except TransportError as exc:
                if proactive and time.time() < self.tokens.access_expires:
                    # the current token still works: try again on the next request
                    log.warning("could not refresh the login to %s (%s); using the current token meanwhile",
                                self._what, exc)
                    return
                raise
            self.tokens = tokens
            self.renewals += 1
            log.debug("access token for %s renewed (valid for %.0f s)", self._what,
                      tokens.access_expires - time.time())
            if self._persist is not None:
                try:
                    await self._persist(tokens)
                except OSError as exc:
                    log.warning("could not save the renewed login: %s", exc)

    async def _fall_back(self, exc: CloudreveError) -> Tokens:
        if self._relogin is None:
            raise AuthenticationError(
                f"the login to {self._what} is no longer valid ({exc}); log in again with the password"
            ) from None
        log.info("refreshing the login to %s failed (%s); logging in again", self._what, exc)
        return await self._relogin()
