"""v3 dialect: site probing, cookie login (2FA included), logout, storage, routing rules."""

from __future__ import annotations

import time

import httpx
import pytest

from cloudfs.server.common.auth import totp_at
from cloudfs.server.testing import start_server

from .v3helpers import API3, Api3

AUTH_ROUTES = [("GET", "/user/storage"), ("GET", "/user/me"), ("DELETE", "/user/session"),
               ("GET", "/directory/"), ("PUT", "/directory"), ("POST", "/file/create"),
               ("PUT", "/file/upload"), ("DELETE", "/file/upload"), ("POST", "/file/upload/x/0"),
               ("DELETE", "/file/upload/x"), ("PUT", "/file/update/x"), ("PUT", "/file/download/x"),
               ("DELETE", "/object"), ("PATCH", "/object"), ("POST", "/object/copy"),
               ("POST", "/object/rename"), ("GET", "/object/property/x")]


def test_ping_and_envelope(v3_server):
    resp = httpx.get(v3_server.url + API3 + "/site/ping")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["cache-control"] == "private, no-cache"
    assert "set-cookie" not in resp.headers
    assert resp.json() == {"code": 0, "data": "3.8.3", "msg": ""}


def test_site_config_anonymous_sets_csrf_session(v3_server):
    resp = httpx.get(v3_server.url + API3 + "/site/config")
    body = resp.json()
    assert body["code"] == 0
    data = body["data"]
    assert data["title"] == "Cloudreve" and data["captcha_type"] == "normal"
    assert data["loginCaptcha"] is False and data["registerEnabled"] is True and data["wopi_exts"] is None
    user = data["user"]
    assert user["anonymous"] is True and user["user_name"] == "" and user["group"]["name"] == "Anonymous"
    assert user["created_at"] == "0001-01-01T00:00:00Z" and user["tags"] == []
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("cloudreve-session=") and "HttpOnly" in cookie and "Max-Age=5184000" in cookie
    assert "Path=/" in cookie


def test_login_shapes_and_cookie(v3_server):
    with Api3(v3_server, login=False) as api:
        resp = api.request("POST", "/user/session", json={"userName": v3_server.email,
                                                           "Password": v3_server.password, "captchaCode": ""})
        body = resp.json()
        assert body["code"] == 0 and body["msg"] == "" and "error" not in body
        user = body["data"]
        assert set(user) == {"id", "user_name", "nickname", "status", "avatar", "created_at", "preferred_theme",
                             "anonymous", "group", "tags"}
        assert user["user_name"] == v3_server.email and user["status"] == 0 and user["anonymous"] is False
        assert user["group"] == {"id": 2, "name": "User", "allowShare": True, "allowRemoteDownload": False,
                                 "allowArchiveDownload": False, "shareDownload": True, "compress": False,
                                 "webdav": True, "sourceBatch": 10, "advanceDelete": False,
                                 "allowWebDAVProxy": False}
        assert resp.cookies.get("cloudreve-session")
        assert api.ok("GET", "/user/me")["id"] == user["id"]
        config = api.ok("GET", "/site/config")
        assert config["user"]["user_name"] == v3_server.email


@pytest.mark.parametrize("body,code,msg", [
    ({"userName": "demo@cloudfs.local", "Password": "wrong-password"}, 40020, "Wrong password or email address"),
    ({"userName": "nobody@cloudfs.local", "Password": "whatever"}, 40020, "Wrong password or email address"),
    ({"userName": "not-an-email", "Password": "whatever"}, 40001, "Email format error"),
    ({"Password": "whatever"}, 40001, "Email cannot be empty"),
    ({"userName": "demo@cloudfs.local"}, 40001, "Password cannot be empty"),
    ({"userName": "demo@cloudfs.local", "Password": "abc"}, 40001, "Password too short"),
    ({"userName": "demo@cloudfs.local", "Password": "x" * 65}, 40001, "Password too long"),
    ({"userName": 12, "Password": "abcd"}, 40001, "JSON marshall error"),
])
def test_login_errors(v3_server, body, code, msg):
    resp = httpx.post(v3_server.url + API3 + "/user/session", json=body)
    assert resp.status_code == 200
    assert resp.json() == {"code": code, "msg": msg}
    assert "set-cookie" not in resp.headers


@pytest.mark.parametrize("raw", [b"", b"{", b"nul", b"\xff\xfe", b"[1]"])
def test_malformed_json(v3_server, raw):
    body = httpx.post(v3_server.url + API3 + "/user/session", content=raw).json()
    assert body["code"] == 40001 and body["msg"] in ("Parameter error", "JSON marshall error")


def test_auth_routes_need_login(v3_server):
    for method, path in AUTH_ROUTES:
        resp = httpx.request(method, v3_server.url + API3 + path, json={})
        assert resp.status_code == 200, (method, path)
        assert resp.json() == {"code": 401, "msg": "Login required"}, (method, path)


def test_forged_or_foreign_cookies_are_anonymous(v3_server, api3):
    good = api3.http.cookies.get("cloudreve-session")
    for value in ("garbage", good[:-4] + "AAAA", ""):
        resp = httpx.get(v3_server.url + API3 + "/user/storage", cookies={"cloudreve-session": value})
        assert resp.json()["code"] == 401
    resp = httpx.get(v3_server.url + API3 + "/user/storage", cookies={"cloudreve-session": good})
    assert resp.json()["code"] == 0


def test_storage(api3):
    data = api3.storage()
    assert set(data) == {"used", "free", "total"}
    assert data["total"] == 1 << 30 and data["used"] + data["free"] == data["total"]


def test_logout_keeps_cookie_but_drops_user(v3_server):
    with Api3(v3_server) as api:
        resp = api.request("DELETE", "/user/session")
        assert resp.json() == {"code": 0, "msg": ""}
        assert "cloudreve-session=" in resp.headers["set-cookie"]
        assert api.get("/user/storage") == {"code": 401, "msg": "Login required"}
        api.login()  # the same cookie jar can log in again
        assert api.get("/user/storage")["code"] == 0


def test_unknown_routes_and_methods_are_plain_404(v3_server):
    for method, path in [("GET", "/api/v3/nope"), ("POST", "/api/v3/site/ping"), ("GET", "/"),
                         ("GET", "/api/v4/site/ping"), ("POST", "/api/v4/session/token"),
                         ("HEAD", "/api/v3/file/download/x"), ("PUT", "/api/v3/object")]:
        resp = httpx.request(method, v3_server.url + path)
        assert resp.status_code == 404, (method, path)
        if method != "HEAD":
            assert resp.text == "404 page not found"


def test_trailing_slash_redirects_like_gin(v3_server):
    resp = httpx.get(v3_server.url + API3 + "/directory")
    assert resp.status_code == 301 and resp.headers["location"] == "/api/v3/directory/"
    resp = httpx.get(v3_server.url + API3 + "/site/ping/")
    assert resp.status_code == 301 and resp.headers["location"] == "/api/v3/site/ping"
    resp = httpx.post(v3_server.url + API3 + "/user/session/", json={})
    assert resp.status_code == 307 and resp.headers["location"] == "/api/v3/user/session"


def test_two_factor_login(tmp_path):
    secret = "JBSWY3DPEHPK3PXP"
    with start_server(tmp_path, dialect="v3", extra_args=["--otp-secret", secret]) as srv, \
            Api3(srv, login=False) as api:
        assert api.post("/user/2fa", {"code": "123456"}) == {"code": 40023, "msg": "Login session not exist"}
        body = api.post("/user/session", {"userName": srv.email, "Password": srv.password})
        assert body == {"code": 203, "msg": ""}
        assert api.get("/user/storage")["code"] == 401  # not logged in yet
        assert api.post("/user/2fa", {}) == {"code": 40001, "msg": "Code cannot be empty"}
        assert api.post("/user/2fa", {"code": "000000"}) == {"code": 40022, "msg": "2FA code not correct"}
        with Api3(srv, login=False) as other:  # another cookie jar has no pending login
            assert other.post("/user/2fa", {"code": totp_at(secret, time.time())})["code"] == 40023
        body = api.post("/user/2fa", {"code": totp_at(secret, time.time())})
        assert body["code"] == 0 and body["data"]["user_name"] == srv.email
        assert api.get("/user/storage")["code"] == 0
        # the pending 2FA login was consumed
        assert api.post("/user/2fa", {"code": totp_at(secret, time.time())})["code"] == 40023


def test_debug_mode_adds_error_text(tmp_path):
    with start_server(tmp_path, dialect="v3", extra_args=["--debug"]) as srv:
        body = httpx.post(srv.url + API3 + "/user/session",
                          json={"userName": "nobody@cloudfs.local", "Password": "whatever"}).json()
        assert body == {"code": 40020, "msg": "Wrong password or email address", "error": "record not found"}


def test_data_dir_keeps_its_dialect(tmp_path):
    with start_server(tmp_path / "v3", dialect="v3"):
        pass
    with pytest.raises(RuntimeError, match="holds a Cloudreve v3 drive"):
        start_server(tmp_path / "v3")
    with start_server(tmp_path / "v4"):
        pass
    with pytest.raises(RuntimeError, match="--dialect v4"):
        start_server(tmp_path / "v4", extra_args=["--dialect", "v3"])
