"""The on-disk token store: lets a restarted mount log in again without the
password.

One JSON file, ``<user state dir>/tokens.json`` (platformdirs; on Linux
``~/.local/state/cloudfs/tokens.json``), mode 0600 in a 0700 directory,
rewritten atomically (temporary file + rename) under an advisory lock so
that several mounts can share it::

    {"format": 1,
     "logins": {"<server url> <user>": {"url": ..., "user": ...,
                "refresh_token": ..., "refresh_expires": <unix s>,
                "access_token": "", "access_expires": 0,
                "session_cookie": "", "session_expires": 0,
                "saved_at": <unix s>}}}

Keyed by server URL (normalised) and user (email, lower-cased).  The client
saves only the refresh token (a starting client refreshes anyway, so an
access token on disk would only be one more secret to steal); the access
fields stay in the format, empty.  A Cloudreve 3 login has no tokens: its
record holds the ``cloudreve-session`` cookie instead (as much a bearer
secret as a refresh token, kept the same way; never the password) and an
empty ``refresh_token``.  A backend whose login is neither (an app key,
tokens that need a user id...) keeps its own shape in ``credential`` (names
to secret strings) and ``credential_expires``, written only when it has one.
Only a file readable by its owner is trusted; the store never logs token,
cookie or credential values.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import platformdirs

from cloudfs.client.redact import register_secret

log = logging.getLogger(__name__)

APP = "cloudfs"
FORMAT = 1


def default_path() -> Path:
    return Path(platformdirs.user_state_dir(APP)) / "tokens.json"


def normalize_url(url: str) -> str:
    """``HTTPS://Host:443/`` and ``https://host:443`` are the same server."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def _saved_at(raw: dict[str, object]) -> float:
    """When a stored login was saved (0 if the record does not say)."""
    value = raw.get("saved_at", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _key(url: str, user: str) -> str:
    return f"{normalize_url(url)} {user.strip().lower()}"


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """One saved login.  Token values are hidden from repr()."""

    url: str
    user: str
    refresh_token: str = field(repr=False)
    refresh_expires: float = 0.0
    access_token: str = field(default="", repr=False)
    access_expires: float = 0.0
    saved_at: float = 0.0
    #: Cloudreve 3: the session cookie's value and when it stops working
    session_cookie: str = field(default="", repr=False)
    session_expires: float = 0.0
    #: the shape a backend chooses for a login that is neither a refresh
    #: token nor a session cookie (an app key, tokens with a user id...):
    #: names to secret values, stored as they are; and when it stops working
    credential: Mapping[str, str] = field(default_factory=dict, repr=False)
    credential_expires: float = 0.0

    def __post_init__(self) -> None:
        register_secret(self.refresh_token)
        register_secret(self.access_token)
        register_secret(self.session_cookie)
        for value in self.credential.values():
            register_secret(value)

    @property
    def refresh_usable(self) -> bool:
        """Not known to be expired (0 = unknown expiry: worth a try)."""
        return not self.refresh_expires or self.refresh_expires > time.time()

    @property
    def usable(self) -> bool:
        """Holds a credential (refresh token, session cookie or a backend's own) not known to be expired."""
        if self.credential:
            return not self.credential_expires or self.credential_expires > time.time()
        if self.session_cookie:
            return not self.session_expires or self.session_expires > time.time()
        return bool(self.refresh_token) and self.refresh_usable


class Store(Protocol):
    """What a login needs of a token store (:class:`TokenStore` or a stand-in)."""

    def load(self, url: str, user: str | None = None) -> StoredLogin | None: ...
    def save(self, login: StoredLogin) -> None: ...


class TokenStore:
    """Saved logins, one per (server URL, user)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    # ---- reading ---------------------------------------------------------
    def load(self, url: str, user: str | None = None) -> StoredLogin | None:
        """The login saved for ``user`` at ``url``; with ``user=None`` the
        most recently saved login for ``url``.  None if there is none, or if
        its credential (refresh token or session cookie) has expired."""
        logins = self._read()
        if user is not None:
            raw = logins.get(_key(url, user))
            candidates = [raw] if raw else []
        else:
            prefix = normalize_url(url) + " "
            candidates = [v for k, v in logins.items() if k.startswith(prefix)]
            candidates.sort(key=_saved_at, reverse=True)
        for raw in candidates:
            login = _from_json(raw)
            if login is not None and login.usable:
                return login
        return None

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read the token store %s: %s", self.path, exc)
            return {}
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("ignoring the token store %s: readable by others (mode %o)", self.path,
                            stat.S_IMODE(mode))
                return {}
            try:
                doc = json.loads(f.read())
            except ValueError:
                log.warning("ignoring the token store %s: not valid JSON", self.path)
                return {}
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("logins"), dict):
            log.warning("ignoring the token store %s: unknown format", self.path)
            return {}
        return {k: v for k, v in doc["logins"].items() if isinstance(v, dict)}

    # ---- writing -----------------------------------------------------------
    def save(self, login: StoredLogin) -> None:
        with self._locked():
            logins = self._read()
            record = {
                "url": normalize_url(login.url),
                "user": login.user,
                "refresh_token": login.refresh_token,
                "refresh_expires": login.refresh_expires,
                "access_token": login.access_token,
                "access_expires": login.access_expires,
                "session_cookie": login.session_cookie,
                "session_expires": login.session_expires,
                "saved_at": login.saved_at or time.time(),
            }
            if login.credential:  # only a backend with its own shape writes these keys
                record["credential"] = dict(login.credential)
                record["credential_expires"] = login.credential_expires
            logins[_key(login.url, login.user)] = record
            self._write(logins)

    def delete(self, url: str, user: str | None = None) -> bool:
        """Forget the login(s) for ``url`` (one user, or all); True if any was stored."""
        with self._locked():
            logins = self._read()
            if user is not None:
                gone = [_key(url, user)] if _key(url, user) in logins else []
            else:
                prefix = normalize_url(url) + " "
                gone = [k for k in logins if k.startswith(prefix)]
            for k in gone:
                del logins[k]
            if gone:
                self._write(logins)
            return bool(gone)

    def _write(self, logins: dict[str, dict[str, object]]) -> None:
        data = json.dumps({"format": FORMAT, "logins": logins}, indent=1, sort_keys=True).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        # O_EXCL after unlinking a leftover: never write through a planted symlink
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _seconds(raw: dict[str, object], key: str) -> float:
    """A time field of a stored record (absent: 0); TypeError or ValueError if it is no number."""
    value = raw.get(key) or 0.0
    if not isinstance(value, int | float | str):
        raise TypeError(f"{key} is not a number")
    return float(value)


def _credential(value: object) -> dict[str, str]:
    """A backend's stored credential (absent: empty); TypeError if it is not names to strings."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError("credential is not a map of strings")
    return dict(value)


def _from_json(raw: dict[str, object]) -> StoredLogin | None:
    try:
        return StoredLogin(
            url=str(raw["url"]),
            user=str(raw["user"]),
            refresh_token=str(raw["refresh_token"]),
            refresh_expires=_seconds(raw, "refresh_expires"),
            access_token=str(raw.get("access_token") or ""),
            access_expires=_seconds(raw, "access_expires"),
            saved_at=_seconds(raw, "saved_at"),
            session_cookie=str(raw.get("session_cookie") or ""),
            session_expires=_seconds(raw, "session_expires"),
            credential=_credential(raw.get("credential")),
            credential_expires=_seconds(raw, "credential_expires"),
        )
    except (KeyError, TypeError, ValueError):
        return None
