"""KooDrive's three logins, each an authenticator that signs one request at a
time (:meth:`request_headers`), since the app signature covers the method,
path, query and body:

* :class:`CarrierAuth` (CAR): ``POST /auth/login`` with account + password,
  then ``POST /auth/refreshToken``; the pair and the user id are kept in the
  token store in this backend's own shape (``credential``);
* :class:`AppAuth` (ENT): AppId/AppSecret HMAC signature acting for ``X-User-Id``;
* :class:`PastedAuth`: a bearer token copied from the web front end, which
  lives 20 minutes, sliding with use, and cannot be renewed.

Every request also carries ``X-User-Id`` and ``X-Date`` (UTC, now).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import trio

from cloudfs.client.auth import Tokens, keeps_current_token
from cloudfs.client.koodrive import signing
from cloudfs.client.koodrive.codes import KooDriveError
from cloudfs.client.redact import register_secret
from cloudfs.errors import AuthenticationError, TransportError

log = logging.getLogger(__name__)

#: the pasted token's lifetime as the ENT reference gives it (sliding)
PASTED_TOKEN_S = 20 * 60


def _base(user_id: str) -> dict[str, str]:
    return {"X-User-Id": user_id, "X-Date": signing.x_date()}


class KooAuth:
    """What the wire layer needs of a KooDrive login."""

    user_id: str = ""
    renewals: int = 0

    async def request_headers(self, method: str, host: str, path: str, query: str, body: bytes) -> dict[str, str]:
        raise NotImplementedError

    async def headers(self) -> Mapping[str, str]:  # the shared Authenticator protocol
        return await self.request_headers("GET", "", "/", "", b"")

    async def rejected(self, sent: Mapping[str, str]) -> None:
        raise AuthenticationError("the server no longer accepts this KooDrive login")

    async def revoke(self) -> None:
        return None


class CarrierAuth(KooAuth):
    """Bearer tokens of the carrier login, refreshed before they expire and
    once more when the server turns one down; a refresh that fails logs in
    again with the password when one is at hand."""

    def __init__(self, tokens: Tokens, user_id: str, *,
                 refresh: Callable[[Tokens], Awaitable[Tokens]],
                 relogin: Callable[[], Awaitable[tuple[Tokens, str]]] | None,
                 persist: Callable[[Tokens], Awaitable[None]], what: str) -> None:
        self.tokens = tokens
        self.user_id = user_id
        self._refresh = refresh
        self._relogin = relogin
        self._persist = persist
        self._what = what
        self._lock = trio.Lock()

    async def request_headers(self, method: str, host: str, path: str, query: str, body: bytes) -> dict[str, str]:
        if self.tokens.refresh_due(time.time()):
            await self._renew(self.tokens.access_token, proactive=True)
        return {**_base(self.user_id), "Authorization": f"Bearer {self.tokens.access_token}"}

    async def rejected(self, sent: Mapping[str, str]) -> None:
        await self._renew(sent.get("Authorization", "").removeprefix("Bearer "), proactive=False)

    async def _renew(self, stale: str, *, proactive: bool) -> None:
        async with self._lock:
            if self.tokens.access_token != stale:
                return  # another task renewed meanwhile
            try:
                fresh = await self._refresh(self.tokens)
            except (KooDriveError, AuthenticationError) as exc:
                # refused: an error code, or the gateway's 401 for a refresh
                # token that is expired or retired (APIGW.0301)
                if self._relogin is None:
                    raise AuthenticationError(
                        f"the login to {self._what} is no longer valid (refresh refused: {exc}); "
                        "log in again with the password") from None
                log.info("logging in to %s again: the refresh was refused (%s)", self._what, exc)
                fresh, self.user_id = await self._relogin()
            except TransportError as exc:
                if keeps_current_token(self.tokens, exc, proactive=proactive, what=self._what):
                    return
                raise
            self.tokens = fresh
            self.renewals += 1
            try:
                await self._persist(fresh)
            except OSError as exc:
                log.warning("could not save the renewed login: %s", exc)


class AppAuth(KooAuth):
    """The enterprise app signature: no session, every request signed."""

    def __init__(self, app_id: str, app_secret: str, user_id: str) -> None:
        register_secret(app_secret, lasting=True)
        self.app_id = app_id
        self._secret = app_secret
        self.user_id = user_id

    async def request_headers(self, method: str, host: str, path: str, query: str, body: bytes) -> dict[str, str]:
        headers = _base(self.user_id)
        signed = {"host": host, "x-date": headers["X-Date"], "x-user-id": self.user_id}
        headers["Authorization"] = signing.authorization(self.app_id, self._secret, method, path, query, signed, body)
        return headers


class PastedAuth(KooAuth):
    """A bearer token pasted by the user: nothing can renew it."""

    def __init__(self, token: str, user_id: str) -> None:
        register_secret(token)
        self._token = token.removeprefix("Bearer").lstrip(" +")
        self.user_id = user_id
        log.warning("using a pasted KooDrive token: it lasts %d minutes after its last use (sliding) and cannot "
                    "be renewed; an idle mount loses its login", PASTED_TOKEN_S // 60)

    async def request_headers(self, method: str, host: str, path: str, query: str, body: bytes) -> dict[str, str]:
        return {**_base(self.user_id), "Authorization": f"Bearer {self._token}"}

    async def rejected(self, sent: Mapping[str, str]) -> None:
        raise AuthenticationError("the pasted KooDrive token has expired (20 minutes without use); paste a new one")
