"""Credentials: password hashes, JWT token pairs, TOTP and 2FA login sessions.

Token pairs follow ``pkg/auth/jwt.go``: HS256 JWTs with claims
``token_type`` (access/refresh), ``sub`` (user hashid), ``nbf``, ``exp``;
refresh tokens add ``root_token_id`` (the login chain, revoked by sign-out)
and ``state_hash`` (sha256 of email/password-hash/site id, so a password
change kills old refresh tokens).  An access token that fails to verify is
not an error: the request is simply anonymous.

TOTP is RFC 6238 (HMAC-SHA1, 30 s, 6 digits, ±1 step like pquerna/otp)
written with the stdlib.  The fault injector can force every access token
issued so far to count as expired (:meth:`TokenAuth.expire_all`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

ACCESS, REFRESH = "access", "refresh"


# --- passwords --------------------------------------------------------------
def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 100_000).hex()
    return f"pbkdf2:{salt}:{digest}"


def check_password(stored: str, password: str) -> bool:
    try:
        _, salt, digest = stored.split(":", 2)
    except ValueError:
        return False
    calc = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 100_000).hex()
    return hmac.compare_digest(calc, digest)


# --- TOTP (RFC 6238) --------------------------------------------------------
def _b32decode(secret: str) -> bytes:
    s = secret.strip().replace(" ", "").upper()
    s += "=" * (-len(s) % 8)
    return base64.b32decode(s)


def totp_at(secret: str, when: float, step: int = 30, digits: int = 6) -> str:
    counter = int(when // step)
    mac = hmac.new(_b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def totp_verify(secret: str, code: str, now: float | None = None, skew: int = 1) -> bool:
    if not code or len(code) != 6 or not code.isdigit():
        return False
    now = time.time() if now is None else now
    try:
        return any(hmac.compare_digest(totp_at(secret, now + i * 30), code)
                   for i in range(-skew, skew + 1))
    except (ValueError, TypeError):
        return False


def valid_totp_secret(secret: str) -> bool:
    try:
        return len(_b32decode(secret)) > 0
    except (ValueError, TypeError):
        return False


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires: float
    refresh_expires: float


class TokenError(Exception):
    pass


class TokenAuth:
    """Issues and verifies token pairs for one server (one secret)."""

    def __init__(self, secret: bytes, access_ttl: float, refresh_ttl: float, site_id: str,
                 is_revoked: Any, revoke: Any) -> None:
        self.secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.site_id = site_id
        self._is_revoked = is_revoked  # callable(root_id) -> bool
        self._revoke = revoke  # callable(root_id, until)
        #: forced expiry (fault injection): tokens with nbf <= this second are dead,
        #: except those issued after the call inside that same second
        self._expired_before: float | None = None
        self._survivors: set[str] = set()

    def state_hash(self, email: str, password_hash: str) -> bytes:
        return hashlib.sha256(f"{email}/{password_hash}/{self.site_id}".encode()).digest()

    def issue(self, user_hash: str, email: str, password_hash: str,
              root_id: str | None = None) -> TokenPair:
        now = time.time()
        access_exp = now + self.access_ttl
        refresh_exp = now + self.refresh_ttl
        root_id = root_id or str(uuid.uuid4())
        access = jwt.encode({"token_type": ACCESS, "sub": user_hash, "nbf": int(now),
                             "exp": int(access_exp)}, self.secret, algorithm="HS256")
        refresh = jwt.encode({"token_type": REFRESH, "sub": user_hash, "nbf": int(now),
                              "exp": int(refresh_exp),
                              "state_hash": base64.b64encode(self.state_hash(email, password_hash)).decode(),
                              "root_token_id": root_id}, self.secret, algorithm="HS256")
        if self._expired_before is not None and int(now) == int(self._expired_before):
            self._survivors.add(access)
        return TokenPair(access, refresh, access_exp, refresh_exp)

    def claims(self, token: str) -> dict[str, Any]:
        """Parse and verify (signature, exp, nbf); raises TokenError."""
        try:
            # golang-jwt accepts any HMAC algorithm with the key we hand back
            return jwt.decode(token, self.secret, algorithms=["HS256", "HS384", "HS512"],
                              options={"require": []})
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None

    def verify_access(self, token: str) -> dict[str, Any] | None:
        """Claims of a usable token, or None (anonymous).  May return refresh claims."""
        try:
            claims = self.claims(token)
        except TokenError:
            return None
        if claims.get("token_type") == ACCESS and self._force_expired(token, claims):
            return None
        return claims

    def _force_expired(self, token: str, claims: dict[str, Any]) -> bool:
        if self._expired_before is None:
            return False
        nbf = claims.get("nbf")
        if not isinstance(nbf, (int, float)):
            return True
        return int(nbf) <= int(self._expired_before) and token not in self._survivors

    def expire_all(self) -> None:
        self._expired_before = time.time()
        self._survivors = set()

    def clear_expiry(self) -> None:
        self._expired_before = None
        self._survivors = set()

    def check_refresh(self, token: str) -> dict[str, Any]:
        """Claims of a valid, unrevoked refresh token; raises TokenError."""
        claims = self.claims(token)
        if claims.get("token_type") != REFRESH:
            raise TokenError("invalid refresh token")
        root = claims.get("root_token_id")
        if not root or self._is_revoked(root):
            raise TokenError("invalid refresh token")
        return claims

    def revoke_chain(self, root_id: str) -> None:
        self._revoke(root_id, time.time() + self.refresh_ttl + 10)


class TwoFactorSessions:
    """Pending password-verified logins awaiting an OTP (600 s, in memory)."""

    TTL = 600.0

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[int, float]] = {}

    def create(self, uid: int) -> str:
        sid = str(uuid.uuid4())
        self._sessions[sid] = (uid, time.monotonic() + self.TTL)
        return sid

    def get(self, sid: str) -> int | None:
        entry = self._sessions.get(sid)
        if entry is None or entry[1] < time.monotonic():
            self._sessions.pop(sid, None)
            return None
        return entry[0]

    def delete(self, sid: str) -> None:
        self._sessions.pop(sid, None)
