"""Site probing, login, tokens and the auth rules of /api/v4."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest

from cloudfs.server.common.auth import totp_at
from cloudfs.server.testing import start_server

from .helpers import API, Api


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_ping_and_envelope(server):
    resp = httpx.get(server.url + API + "/site/ping")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["cache-control"] == "private, no-cache"
    assert resp.json() == {"code": 0, "data": "4.14.0", "msg": ""}


def test_site_config_sections(server):
    basic = httpx.get(server.url + API + "/site/config/basic").json()
    assert basic["code"] == 0
    assert basic["data"]["user"]["anonymous"] is True
    assert basic["data"]["title"] == "Cloudreve" and basic["data"]["instance_id"]
    login = httpx.get(server.url + API + "/site/config/login").json()
    assert login == {"code": 0, "data": {}, "msg": ""}
    explorer = httpx.get(server.url + API + "/site/config/explorer").json()
    assert explorer["data"]["max_batch_size"] == 3000


def test_unknown_routes_are_plain_404(server):
    for method, path in [("GET", "/api/v4/nope"), ("POST", "/api/v4/site/ping"), ("GET", "/"),
                         ("PUT", "/api/v4/file/rename"), ("GET", "/api/v3/site/ping")]:
        resp = httpx.request(method, server.url + path)
        assert resp.status_code == 404, (method, path)
        assert resp.text == "404 page not found"


def test_login_shapes(server):
    with Api(server, login=False) as api:
        body = api.post("/session/token", {"email": server.email, "password": server.password})
    _check_login(server, body)


def _check_login(server, body):
    assert body["code"] == 0 and body["msg"] == "" and "correlation_id" not in body
    user, token = body["data"]["user"], body["data"]["token"]
    assert user["email"] == server.email and user["status"] == "active" and user["group"]["name"] == "User"
    assert "anonymous" not in user
    assert set(token) == {"access_token", "refresh_token", "access_expires", "refresh_expires"}
    access, refresh = _claims(token["access_token"]), _claims(token["refresh_token"])
    assert access["token_type"] == "access" and access["sub"] == user["id"]
    assert access["exp"] - access["nbf"] == 3600
    assert refresh["token_type"] == "refresh" and refresh["root_token_id"] and refresh["state_hash"]
    assert refresh["exp"] - refresh["nbf"] == 14 * 24 * 3600
    assert jwt.get_unverified_header(token["access_token"])["alg"] == "HS256"


@pytest.mark.parametrize("body,code,msg", [
    ({"email": "demo@cloudfs.local", "password": "wrong-password"}, 40080, "Incorrect password or email address"),
    ({"email": "nobody@cloudfs.local", "password": "whatever"}, 40080, "Incorrect password or email address"),
    ({"email": "not-an-email", "password": "whatever"}, 40001, "Email format error"),
    ({"password": "whatever"}, 40001, "Email cannot be empty"),
    ({"email": "demo@cloudfs.local"}, 40001, "Password cannot be empty"),
    ({"email": "demo@cloudfs.local", "password": "abc"}, 40001, "Password too short"),
    ({"email": 12, "password": "abcd"}, 40001, "JSON marshall error"),
])
def test_login_errors(server, body, code, msg):
    resp = httpx.post(server.url + API + "/session/token", json=body).json()
    assert resp["code"] == code and resp["msg"] == msg
    assert ("correlation_id" in resp) == (code == 40080)


@pytest.mark.parametrize("raw", [b"", b"{", b"nul", b"\xff\xfe"])
def test_malformed_json(server, raw):
    resp = httpx.post(server.url + API + "/session/token", content=raw).json()
    assert resp == {"code": 40001, "msg": "Parameter error"}


def test_json_keys_are_case_insensitive_like_go(server):
    resp = httpx.post(server.url + API + "/session/token",
                      json={"EMAIL": server.email, "Password": server.password}).json()
    assert resp["code"] == 0


def test_protected_endpoints_need_login(server):
    for path in ("/user/me", "/user/capacity"):
        body = httpx.get(server.url + API + path).json()
        assert body["code"] == 401 and body["msg"] == "Login required" and body["correlation_id"]
    body = httpx.get(server.url + API + "/file", params={"uri": "cloudreve://my/"}).json()
    assert body["code"] == 401


def test_forged_and_garbage_tokens_are_anonymous(server, api):
    forged = jwt.encode({"token_type": "access", "sub": api.ok("GET", "/user/me")["id"],
                         "nbf": int(time.time()), "exp": int(time.time()) + 60}, "x" * 64, algorithm="HS256")
    for token in (forged, "garbage", api.token + "x"):
        body = httpx.get(server.url + API + "/user/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert body["code"] == 401
    # anonymous is not an error on public routes
    body = httpx.get(server.url + API + "/site/ping", headers={"Authorization": "Bearer garbage"}).json()
    assert body["code"] == 0


def test_refresh_token_as_access_token_is_40020(server, api):
    body = httpx.get(server.url + API + "/user/me",
                     headers={"Authorization": f"Bearer {api.refresh_token}"}).json()
    assert body["code"] == 40020 and body["msg"] == "Invalid token type"


def test_user_me_and_capacity(server, api):
    me = api.ok("GET", "/user/me")
    assert me["email"] == server.email and me["group"]["permission"]
    cap = api.ok("GET", "/user/capacity")
    assert cap["total"] == 1 << 30 and isinstance(cap["used"], int)


def test_refresh_and_sign_out(server, api):
    first_refresh = api.refresh_token
    body = api.post("/session/token/refresh", {"refresh_token": first_refresh}, auth=False)
    assert body["code"] == 0
    assert set(body["data"]) == {"access_token", "refresh_token", "access_expires", "refresh_expires"}
    new = body["data"]
    assert _claims(new["refresh_token"])["root_token_id"] == _claims(first_refresh)["root_token_id"]
    headers = {"Authorization": f"Bearer {new['access_token']}"}
    assert httpx.get(server.url + API + "/user/me", headers=headers).json()["code"] == 0
    # the old refresh token is not consumed
    assert api.post("/session/token/refresh", {"refresh_token": first_refresh}, auth=False)["code"] == 0
    # errors
    assert api.post("/session/token/refresh", {"refresh_token": "junk"}, auth=False)["code"] == 40020
    assert api.post("/session/token/refresh", {"refresh_token": api.token}, auth=False)["code"] == 40020
    assert api.post("/session/token/refresh", {}, auth=False) == {"code": 40001,
                                                                   "msg": "RefreshToken cannot be empty"}
    # sign out revokes the whole chain; access tokens stay valid until they expire
    assert api.call("DELETE", "/session/token", json={"refresh_token": first_refresh}) == {
        "code": 0, "data": "", "msg": ""}
    assert api.post("/session/token/refresh", {"refresh_token": new["refresh_token"]}, auth=False)["code"] == 40020
    assert httpx.get(server.url + API + "/user/me", headers=headers).json()["code"] == 0
    assert api.call("DELETE", "/session/token", json={"refresh_token": "junk"})["code"] == 40020


def test_expired_access_token_is_401(tmp_path):
    # a TTL long enough that a loaded machine answers the first call in time
    with start_server(tmp_path, access_ttl=4) as srv, Api(srv) as api:
        assert api.get("/user/me")["code"] == 0
        time.sleep(5.1)
        assert api.get("/user/me")["code"] == 401
        body = api.post("/session/token/refresh", {"refresh_token": api.refresh_token}, auth=False)
        assert body["code"] == 0


def test_two_factor_login(tmp_path):
    secret = "JBSWY3DPEHPK3PXP"
    with start_server(tmp_path, extra_args=["--otp-secret", secret]) as srv:
        body = httpx.post(srv.url + API + "/session/token",
                          json={"email": srv.email, "password": srv.password}).json()
        assert body["code"] == 203 and body["msg"] == ""
        sid = body["data"]
        uuid.UUID(sid)
        wrong = httpx.post(srv.url + API + "/session/token/2fa", json={"otp": "000000", "session_id": sid}).json()
        if totp_at(secret, time.time()) != "000000":
            assert wrong["code"] == 40022 and wrong["msg"] == "Incorrect 2FA code"
        missing = httpx.post(srv.url + API + "/session/token/2fa",
                             json={"otp": "123456", "session_id": str(uuid.uuid4())}).json()
        assert missing["code"] == 404
        ok = httpx.post(srv.url + API + "/session/token/2fa",
                        json={"otp": totp_at(secret, time.time()), "session_id": sid}).json()
        assert ok["code"] == 0 and ok["data"]["token"]["access_token"]
        # the 2FA session is single use
        again = httpx.post(srv.url + API + "/session/token/2fa",
                           json={"otp": totp_at(secret, time.time()), "session_id": sid}).json()
        assert again["code"] == 404


def test_totp_matches_rfc6238_vectors():
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp_at(secret, 59, digits=8) == "94287082"
    assert totp_at(secret, 1111111109, digits=8) == "07081804"
    assert totp_at(secret, 2000000000, digits=8) == "69279037"
