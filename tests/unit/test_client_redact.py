"""Secrets never reach the logs (cloudfs.client.redact)."""

import io
import logging

import pytest

from cloudfs.client.auth import RedactingFilter, Tokens
from cloudfs.client.redact import MASK, redact, register_secret

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"token {JWT} leaked",
        '{"email": "a@b.c", "password": "hunter2-secret"}',
        "{'refresh_token': 'rt-value-123', 'x': 1}",
        'access_token="at-value-456"',
        "GET https://h/api/v4/file/content/abc/0/f.txt?sign=Zm9vYmFy%3A1700000000&download=true",
        "otp=123456",
        '{"otp": "654321", "session_id": "s"}',
    ],
)
def test_patterns_remove_secrets(text):
    out = redact(text)
    assert MASK in out
    for secret in (JWT, "hunter2-secret", "rt-value-123", "at-value-456", "Zm9vYmFy", "123456", "654321"):
        assert secret not in out


def test_redact_keeps_ordinary_text():
    text = "uploaded /docs/report.pdf (1234 bytes) to https://h/api/v4/file/upload/abc/0"
    assert redact(text) == text


def test_registered_secret_is_redacted_anywhere():
    register_secret("correct horse battery staple")
    assert "battery" not in redact("login failed for correct horse battery staple!")
    register_secret("abc")  # too short to replace verbatim
    assert redact("abcdef") == "abcdef"


def test_tokens_repr_hides_values():
    tokens = Tokens("access-secret-value", "refresh-secret-value", 1.0, 2.0)
    assert "secret-value" not in repr(tokens)
    # and both were registered for redaction
    assert "secret-value" not in redact("x access-secret-value y refresh-secret-value")


def _logger_with_filter() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_client_redact")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_redacts_messages_and_args():
    logger, stream = _logger_with_filter()
    logger.info("sending %s with %s", {"password": "pw-in-args-9"}, f"Bearer {JWT}")
    logger.warning("refresh_token=%s", "rt-in-format-7")
    out = stream.getvalue()
    assert "pw-in-args-9" not in out and JWT not in out and "rt-in-format-7" not in out
    assert out.count(MASK) >= 3


def test_filter_redacts_tracebacks():
    logger, stream = _logger_with_filter()
    try:
        raise RuntimeError(f"failed with Authorization: Bearer {JWT}")
    except RuntimeError:
        logger.exception("request failed")
    out = stream.getvalue()
    assert "RuntimeError" in out and JWT not in out


def test_filter_survives_bad_format():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("not-a-number",), None)
    assert RedactingFilter().filter(record) is True  # left for logging to report


def test_a_password_stays_redacted_however_many_tokens_come_after_it():
    """Tokens rotate and only the newest are kept; a password is secret for
    the life of the process (a long mount renews its token again and again)."""
    register_secret("long-lived-password-1234", lasting=True)
    for i in range(200):
        register_secret(f"renewed-token-{i:04d}-abcdef")
    text = "login with long-lived-password-1234 then renewed-token-0199-abcdef"
    assert redact(text) == "login with [REDACTED] then [REDACTED]"
