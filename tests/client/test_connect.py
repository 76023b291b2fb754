"""Detection, login, token store and redaction against the real server."""

from __future__ import annotations

import errno
import io
import json
import logging
import re
import socket
import stat
import traceback
import uuid

import httpx
import pytest
import trio

from cloudfs.client.api import ClientSettings, CloudreveClient
from cloudfs.client.auth import RedactingFilter, TokenStore
from cloudfs.errors import AuthenticationError, NotCloudreveError, TLSFailure, TransportError

from .conftest import FAST

ON_KOODRIVE = True


#: how each dialect's version begins (KooDrive's is its API's, v1)
VERSION_PREFIX = {"v4": "4.", "v3": "3.", "koodrive": "v1"}


async def test_connect_detects_the_dialect(client, server, dialect):
    assert client.info.dialect == dialect
    assert client.info.version.startswith(VERSION_PREFIX[dialect])
    uuid.UUID(client.client_id)  # X-Cr-Client-Id is a UUID per instance
    root = await client.stat("/")
    assert root.is_dir and root.path == "/"


async def test_each_client_has_its_own_client_id(connect):
    a, b = await connect(), await connect()
    assert a.client_id != b.client_id


async def test_wrong_password_is_refused_without_echoing_it(server, tmp_path):
    secret = "definitely-wrong-pw-7319"
    with pytest.raises(AuthenticationError) as info:
        await CloudreveClient.connect(server.url, email=server.email, password=secret, settings=FAST)
    assert info.value.errno == errno.EACCES
    assert secret not in str(info.value)
    assert secret not in "".join(traceback.format_exception(info.value))


async def test_no_credentials_at_all(server, tmp_path):
    with pytest.raises(AuthenticationError):
        await CloudreveClient.connect(server.url, token_store=TokenStore(tmp_path / "t.json"), settings=FAST)


async def test_not_a_cloudreve_server(server):
    url = server.url + "/not/cloudreve"
    with pytest.raises(NotCloudreveError) as info:
        await CloudreveClient.connect(url, email="a@b.c", password="xxxx", settings=FAST)
    message = str(info.value)
    assert url in message and "HTTP 404" in message and "/api/v4/site/ping" in message
    assert "not a Cloudreve server" in message
    assert info.value.errno == errno.EPROTONOSUPPORT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused_fails_within_deadline():
    settings = ClientSettings(deadline_s=2.0, request_timeout_s=1.0, backoff_base_s=0.05)
    start = trio.current_time()
    with pytest.raises(TransportError) as info:
        await CloudreveClient.connect(f"http://127.0.0.1:{_free_port()}", email="a@b.c", password="xxxx",
                                      settings=settings)
    assert trio.current_time() - start < 3.0
    assert info.value.errno == errno.EIO
    assert "refused" in str(info.value)


async def test_tls_error_is_named(server):
    https = server.url.replace("http://", "https://")
    start = trio.current_time()
    with pytest.raises(TLSFailure) as info:
        await CloudreveClient.connect(https, email="a@b.c", password="xxxx", settings=FAST)
    assert "TLS" in str(info.value)
    assert trio.current_time() - start < 2.0  # not retried: it cannot get better


async def test_token_store_resumes_without_password(connect, token_store, server):
    first = await connect()
    await first.stat("/")
    path = token_store.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert server.password not in raw
    doc = json.loads(raw)
    (record,) = doc["logins"].values()
    assert record["user"] == server.email and record["url"] == server.url.rstrip("/").lower()
    # a restarted mount: no password, not even the email
    resumed = await connect(email="", password="")
    assert (await resumed.stat("/")).is_dir


async def test_a_given_password_is_used_even_with_a_stored_login(connect, token_store, server):
    # regression: a wrong password was ignored while a stored login worked
    await connect()
    stored = token_store.load(server.url, server.email)
    assert stored is not None
    with pytest.raises(AuthenticationError):
        await connect(password="definitely-wrong-pw-5521", resume=False)
    assert token_store.load(server.url, server.email) == stored  # a failed login leaves it alone
    fresh = await connect(resume=False)  # the right one logs in anew and replaces it
    assert (await fresh.stat("/")).is_dir
    assert token_store.load(server.url, server.email) != stored


@pytest.mark.v4_only("refresh tokens are Cloudreve 4's; v3: test_v3.py")
async def test_revoked_stored_login_falls_back_to_password(connect, token_store, server):
    await connect()
    login = token_store.load(server.url, server.email)
    from dataclasses import replace

    bad = "not-a-valid-refresh-token"
    # KooDrive keeps its tokens in the backend's own ``credential`` shape
    token_store.save(replace(login, credential={**login.credential, "refresh_token": bad}) if login.credential
                     else replace(login, refresh_token=bad))
    with pytest.raises(AuthenticationError):
        await connect(email="", password="")
    fresh = await connect()  # the password still works and rewrites the store
    assert (await fresh.stat("/")).is_dir
    now = token_store.load(server.url, server.email)
    assert now.credential.get("refresh_token", now.refresh_token) not in ("", bad)


@pytest.mark.v4_only("refresh tokens are Cloudreve 4's; v3: test_v3.py::test_ended_session_falls_back_to_password")
async def test_a_live_client_whose_refresh_is_refused_logs_in_again_with_its_password(connect, server, dialect):
    client = await connect()
    await client.stat("/")
    # the stored login continues the live client's refresh chain: a second
    # client resumed from it ends that chain (Cloudreve: its logout revokes
    # it; KooDrive: with rotation on, its refresh retires the shared token)
    if dialect == "koodrive":
        httpx.post(server.url + "/_cloudfs/koodrive/switches", json={"rotate_refresh": True}).raise_for_status()
        await connect(email="", password="")
    else:
        await (await connect(email="", password="")).logout()
    server.faults.expire_tokens()
    assert (await client.stat("/")).is_dir
    assert client._debug_state()["token_renewals"] == 1


async def test_a_token_store_that_cannot_be_written_costs_the_login_nothing(server, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = TokenStore(blocker / "tokens.json")  # its folder cannot be made
    with caplog.at_level(logging.WARNING, logger="cloudfs.client"):
        async with await CloudreveClient.connect(server.url, email=server.email, password=server.password,
                                                 token_store=store, settings=FAST) as client:
            assert (await client.stat("/")).is_dir
    assert "could not save the login to the token store" in caplog.text
    assert not blocker.read_text()


@pytest.mark.koodrive_lacks("a call to revoke a login (none is documented): cloudfs logout can only forget it")
async def test_logout_revokes_the_stored_login(connect, token_store, server):
    client = await connect()
    await client.logout()
    with pytest.raises(AuthenticationError):
        await connect(email="", password="")  # the stored refresh token no longer works


async def test_access_token_renewed_on_401(client, server):
    await client.stat("/")
    server.faults.expire_tokens()
    assert (await client.stat("/")).is_dir
    assert client._debug_state()["token_renewals"] == 1


async def test_access_token_renewed_when_each_item_of_a_batch_is_refused(client, server, folder):
    """With an expired access token Cloudreve 4 answers a batch call (move,
    delete, metadata) with 401 "Login required" for each item, inside a
    40081: the login is renewed and the call sent again, as for a plain 401
    (the fault soak's uploads failed so at its token expiry, and the next
    close of each file with EIO)."""
    made = await client.create_file(f"{folder}/f")
    await client.mkdir(f"{folder}/to")
    server.faults.expire_tokens()
    await client.set_metadata(made, {"dav:cloudfs:mtime": "1700000000000000000"})
    server.faults.expire_tokens()
    await client.move([f"{folder}/f"], f"{folder}/to")
    server.faults.expire_tokens()
    await client.delete([f"{folder}/to/f"])
    _, children = await client.list_all(f"{folder}/to")
    assert children == []


#: a signed URL's signature (Cloudreve's ``sign``, the object store's ``X-Amz-Signature``)
SIGNATURE = re.compile(r"(?:[?&]sign|X-Amz-Signature)=([^&]+)")


async def test_secrets_never_reach_logs_or_errors(server, tmp_path, local_file, dialect):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    store = TokenStore(tmp_path / "tokens.json")
    try:
        async with await CloudreveClient.connect(server.url, email=server.email, password=server.password,
                                                 token_store=store, settings=FAST) as client:
            src, _ = local_file(1000)
            entry = await client.upload(f"/redact-{uuid.uuid4().hex[:8]}.bin", src)
            await client.read(entry, 0, 100)
            server.faults.expire_tokens()
            await client.stat("/")
            logging.getLogger("cloudfs.test").info("the password is %s", server.password)
            url = client._downloads.urls.cached(entry)
            assert url and SIGNATURE.search(url)
            logging.getLogger("cloudfs.test").info("fetched %s", url)
            auth = client._http.auth
            live = [auth.tokens.access_token, auth.tokens.refresh_token] if dialect != "v3" else [auth.cookie.value]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    out = stream.getvalue()
    login = store.load(server.url, server.email)
    assert "HTTP Request" in out  # httpx did log requests (through the filter)
    # only the refresh token (v3: the cookie; KooDrive: its credential) is kept on disk
    assert login.access_token == ""
    stored = {"v4": login.refresh_token, "v3": login.session_cookie}.get(dialect) or login.credential["refresh_token"]
    for secret in (server.password, stored, *live, SIGNATURE.search(url).group(1)):
        assert secret and secret not in out


OTP_SECRET = "JBSWY3DPEHPK3PXP"


def totp(secret: str, when: float | None = None) -> str:
    """RFC 6238 code (what an authenticator app shows)."""
    import base64
    import hashlib
    import hmac
    import struct
    import time

    counter = int((time.time() if when is None else when) // 30)
    mac = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return str((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000).zfill(6)


@pytest.fixture(scope="module")
def otp_server(tmp_path_factory, dialect):
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("otp"), extra_args=["--otp-secret", OTP_SECRET],
                      dialect=dialect) as srv:
        yield srv


@pytest.mark.koodrive_lacks("a second login factor (the carrier login takes an account and a password)")
async def test_two_factor_login(otp_server, tmp_path, dialect):
    from cloudfs.errors import TwoFactorRequired

    asked = []

    def otp() -> str:
        asked.append(True)
        return totp(OTP_SECRET)

    store = TokenStore(tmp_path / "tokens.json")
    async with await CloudreveClient.connect(otp_server.url, email=otp_server.email, password=otp_server.password,
                                             otp=otp, token_store=store, settings=FAST) as client:
        assert (await client.stat("/")).is_dir
    assert asked == [True]
    # without a code callback: a clear "2FA needed" (EACCES)
    with pytest.raises(TwoFactorRequired) as info:
        await CloudreveClient.connect(otp_server.url, email=otp_server.email, password=otp_server.password,
                                      settings=FAST)
    # v4 names the 2FA session; v3 keeps it in the cookie session
    assert info.value.errno == errno.EACCES and (info.value.session_id or dialect == "v3")
    # a wrong code is refused
    with pytest.raises(AuthenticationError):
        await CloudreveClient.connect(otp_server.url, email=otp_server.email, password=otp_server.password,
                                      otp=lambda: "000000" if totp(OTP_SECRET) != "000000" else "111111",
                                      settings=FAST)
    # the stored login needs no second factor
    async with await CloudreveClient.connect(otp_server.url, token_store=store, settings=FAST) as client:
        assert (await client.stat("/")).is_dir


async def test_access_token_refreshed_before_expiry(tmp_path_factory, tmp_path):
    """v4 only (access tokens); v3 cookies: test_v3_session.py"""
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("short-token"), access_ttl=3) as srv:
        async with await CloudreveClient.connect(srv.url, email=srv.email, password=srv.password,
                                                 token_store=TokenStore(tmp_path / "t.json"),
                                                 settings=FAST) as client:
            await client.stat("/")
            await trio.sleep(2.6)  # inside the last 20% of the token's life, still valid
            assert (await client.stat("/")).is_dir
            # renewed up front: the old token would still have been accepted
            assert client._debug_state()["token_renewals"] == 1
