"""Keeping secrets out of logs: passwords, access/refresh tokens, OTP codes
and URL signatures (a signed download URL is a bearer capability), and
Cloudreve 3 session cookies (``cloudreve-session=...``, which httpcore logs
with the response headers before the client has even read them).

:func:`redact` rewrites a text; :class:`RedactingFilter` applies it to every
log record passing a handler (message, arguments, traceback).  Patterns catch
the shapes secrets travel in (``Bearer ...``, JWTs, ``"password": ...``,
``sign=...``); exact values the client knows to be secret (the password it
was given, the tokens it holds) are registered with :func:`register_secret`
and replaced wherever they appear, whatever the shape.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque

MASK = "[REDACTED]"

#: names whose value is secret in JSON, query strings, headers and reprs
_SECRET_KEYS = (
    "password|passwd|refresh_token|access_token|token|otp|sign|signature|"
    "credential|callback_secret|cookie|set-cookie|cloudreve-session"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <jwt>
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    # any JWT (three base64url segments, the first a JSON header)
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    # "key": "value" / 'key': 'value' / key=value (JSON, repr, query strings)
    (
        re.compile(
            r"(?i)([\"']?\b(?:" + _SECRET_KEYS + r")\b[\"']?\s*[:=]\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&,;'\"})\]]+)"
        ),
        r"\1" + MASK,
    ),
)

#: secrets shorter than this are not replaced verbatim (they would mangle
#: ordinary words); the patterns above still catch them in context
MIN_SECRET_LEN = 4
#: tokens rotate (each renewal registers new ones): the newest this many are kept
_MAX_TOKENS = 64
_tokens: deque[str] = deque(maxlen=_MAX_TOKENS)
#: passwords and app secrets: few, and secret for as long as the process runs
_lasting: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None, *, lasting: bool = False) -> None:
    """Redact ``value`` verbatim from now on.  ``lasting`` (a password, an
    app secret): for the life of the process; otherwise (a token) while it
    is among the newest 64, enough for the live tokens of a few clients, as
    renewals replace them."""
    if not value or len(value) < MIN_SECRET_LEN:
        return
    with _lock:
        if lasting:
            _lasting.add(value)
        elif value not in _tokens:
            _tokens.append(value)


def redact(text: str) -> str:
    """``text`` with every recognisable secret replaced by ``[REDACTED]``."""
    with _lock:
        known = sorted(_lasting.union(_tokens), key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record before it is formatted.

    Attach it to handlers (not loggers) so records from every library
    (httpx logs request URLs, including signed ones) pass through it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
