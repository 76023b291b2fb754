"""KooDrive emulator: login, refresh, Bearer tokens, the X-Date window, X-User-Id,
X-Traceid and the enterprise HMAC-SHA256 app signature."""

from __future__ import annotations

import json
import time

import httpx

from cloudfs.server.koodrive.auth import format_x_date

from .koohelpers import P, KooApi, switches


def test_login_answers_session_info(kd_server):
    with KooApi(kd_server, login=False) as api:
        body = api.login()
    assert body["code"] == 0 and body["msg"] == "success"
    info = body["data"]["sessionInfo"]
    assert info["accessToken"].startswith("AT") and info["refreshToken"].startswith("RT")
    assert info["expiresIn"] == 1800 and abs(info["issuedAt"] / 1000 - time.time()) < 60
    assert body["data"]["userInfo"]["userId"].isdigit() and len(body["data"]["userInfo"]["userId"]) == 19


def test_login_errors(kd_server):
    with httpx.Client(base_url=kd_server.url) as http:
        _login_errors(kd_server, http)


def _login_errors(kd_server, http):
    good = {"account": kd_server.email, "authType": "1", "password": kd_server.password, "captchaToken": ""}
    resp = http.post(P + "/auth/login", json=good)  # no x-hw-agentName
    assert resp.status_code == 400 and resp.json()["code"] == 13000102
    resp = http.post(P + "/auth/login", json={**good, "password": "wrong"}, headers={"x-hw-agentName": "t"})
    assert resp.status_code == 401
    resp = http.post(P + "/auth/login", json={**good, "authType": "2"}, headers={"x-hw-agentName": "t"})
    assert resp.status_code == 400 and resp.json()["code"] == 13000102


def test_refresh_gives_a_working_token(kapi):
    old = kapi.token
    resp = kapi.http.post(P + "/auth/refreshToken", headers={"Authorization": f"AT+{old}"},
                          json={"refreshToken": kapi.refresh_token})
    assert resp.status_code == 200, resp.text
    info = resp.json()["data"]["sessionInfo"]
    assert info["accessToken"] != old and info["refreshToken"] == kapi.refresh_token
    kapi.token = info["accessToken"]
    kapi.space()
    bad = kapi.http.post(P + "/auth/refreshToken", headers={"Authorization": f"AT+{old}"},
                         json={"refreshToken": "RTnope"})
    assert bad.status_code == 401
    no_header = kapi.http.post(P + "/auth/refreshToken", json={"refreshToken": kapi.refresh_token})
    assert no_header.status_code == 401


def test_missing_or_bad_token_is_401(kapi):
    assert kapi.error("GET", f"/space/{kapi.user_id}", 401, params={"type": 1},
                      headers=kapi.headers(Authorization="Bearer ATnot-a-token")) == "APIGW.0301"
    headers = kapi.headers()
    del headers["Authorization"]
    assert kapi.error("GET", f"/space/{kapi.user_id}", 401, params={"type": 1}, headers=headers) == "APIGW.0301"
    # the reference writes the scheme as "Bearer+{access_token}": accepted literally too
    kapi.ok("GET", f"/space/{kapi.user_id}", params={"type": 1},
            headers=kapi.headers(Authorization=f"Bearer+{kapi.token}"))


def test_x_date_window(kapi):
    path = f"/space/{kapi.user_id}"
    for when in (time.time() - 16 * 60, time.time() + 120):  # stale, future
        headers = kapi.headers(**{"X-Date": format_x_date(when)})
        assert kapi.error("GET", path, 400, params={"type": 1}, headers=headers) == "APIGW.0303"
    kapi.ok("GET", path, params={"type": 1}, headers=kapi.headers(**{"X-Date": format_x_date(time.time() - 14 * 60)}))
    for bad in ("2025-11-03T07:01:40Z", ""):
        headers = kapi.headers(**{"X-Date": bad})
        assert kapi.error("GET", path, 400, params={"type": 1}, headers=headers) == "APIGW.0303"
    headers = kapi.headers()
    del headers["X-Date"]
    assert kapi.error("GET", path, 400, params={"type": 1}, headers=headers) == "APIGW.0303"


def test_x_user_id_required_and_must_match(kapi):
    headers = kapi.headers()
    del headers["X-User-Id"]
    assert kapi.error("GET", f"/space/{kapi.user_id}", 400, params={"type": 1}, headers=headers) == "APIGW.0303"
    other = kapi.headers(**{"X-User-Id": "1008600000000000001"})
    assert kapi.error("GET", f"/space/{kapi.user_id}", 400, params={"type": 1}, headers=other) == "APIGW.0303"


def test_x_traceid_is_58_word_characters(kapi):
    kapi.ok("GET", f"/space/{kapi.user_id}", params={"type": 1}, headers=kapi.headers(**{"X-Traceid": "a_1" * 19 + "z"}))
    for bad in ("short", "a" * 59, "-" * 58):
        assert kapi.error("GET", f"/space/{kapi.user_id}", 400, params={"type": 1},
                          headers=kapi.headers(**{"X-Traceid": bad})) == 13000102


def test_hmac_app_signature(kapi):
    path = P + "/files/0"
    body = json.dumps({"containerId": kapi.container, "parentFileId": "root"}).encode()
    resp = kapi.http.post(path, content=body, headers=kapi.app_headers("POST", path, body=body))
    assert resp.status_code == 200 and resp.json()["code"] == 0, resp.text
    # query strings are signed too
    query = "type=1"
    space = P + f"/space/{kapi.user_id}"
    resp = kapi.http.get(space + "?" + query, headers=kapi.app_headers("GET", space, query))
    assert resp.status_code == 200, resp.text


def test_hmac_failures(kapi):
    path = P + "/files/0"
    body = json.dumps({"containerId": kapi.container, "parentFileId": "root"}).encode()

    def code(headers, content=body):
        resp = kapi.http.post(path, content=content, headers=headers)
        assert resp.status_code == 400, resp.text
        return resp.json()["code"]

    assert code(kapi.app_headers("POST", path, body=body, secret="wrong")) == "APIGW.0303"
    assert code(kapi.app_headers("POST", path, body=body), content=body.replace(b"root", b"toor")) == "APIGW.0303"
    stale = kapi.app_headers("POST", path, body=body, when=time.time() - 20 * 60)
    assert code(stale) == "APIGW.0303"
    future = kapi.app_headers("POST", path, body=body, when=time.time() + 300)
    assert code(future) == "APIGW.0303"
    unsigned_user = kapi.app_headers("POST", path, body=body)
    unsigned_user["Authorization"] = unsigned_user["Authorization"].replace(";x-user-id", "")
    assert code(unsigned_user) == "APIGW.0303"
    other_app = kapi.app_headers("POST", path, body=body)
    other_app["Authorization"] = other_app["Authorization"].replace("AppId=cloudfs-demo-app", "AppId=other")
    assert code(other_app) == "APIGW.0303"
    switches(kapi.server, app_auth=False)
    assert code(kapi.app_headers("POST", path, body=body)) == "APIGW.0303"


def test_unknown_api_is_the_gateway_404(kapi):
    resp = kapi.request("GET", "/no/such/api")
    assert resp.status_code == 404 and resp.json()["code"] == "APIGW.0101"
    resp = kapi.request("GET", "/directory")  # a known path, the wrong method
    assert resp.status_code == 404


def test_forced_token_expiry_then_refresh(kapi):
    kapi.space()
    kapi.server.faults.expire_tokens()
    assert kapi.error("GET", f"/space/{kapi.user_id}", 401, params={"type": 1}) == "APIGW.0301"
    resp = kapi.http.post(P + "/auth/refreshToken", headers={"Authorization": f"AT+{kapi.token}"},
                          json={"refreshToken": kapi.refresh_token})
    assert resp.status_code == 200
    kapi.token = resp.json()["data"]["sessionInfo"]["accessToken"]
    kapi.space()


def test_token_lifetime_and_sliding(kd_server):
    switches(kd_server, token_ttl=2, token_sliding=True)
    with KooApi(kd_server) as api:
        for _ in range(3):  # each call pushes the expiry on: 3.6 s > the 2 s lifetime
            time.sleep(1.2)
            api.space()
        switches(kd_server, token_sliding=False)
        api.login()
        time.sleep(2.2)
        assert api.error("GET", f"/space/{api.user_id}", 401, params={"type": 1}) == "APIGW.0301"
    kd_server.faults.clear()


def test_tokens_survive_a_restart(kd_fresh):
    with KooApi(kd_fresh) as api:
        kd_fresh.restart()
        api.http.close()
        api.http = httpx.Client(base_url=kd_fresh.url, timeout=30)
        api.space()


def test_unsigned_payload_switch(kapi):
    path = P + "/files/0"
    body = json.dumps({"containerId": kapi.container, "parentFileId": "root"}).encode()
    unsigned = kapi.app_headers("POST", path, body=body, mode="unsigned")
    assert kapi.http.post(path, content=body, headers=unsigned).status_code == 400
    switches(kapi.server, payload_hash="unsigned")
    assert kapi.http.post(path, content=body, headers=unsigned).status_code == 200


def test_refresh_rotation_switch(kapi):
    switches(kapi.server, rotate_refresh=True)
    resp = kapi.http.post(P + "/auth/refreshToken", headers={"Authorization": f"AT+{kapi.token}"},
                          json={"refreshToken": kapi.refresh_token})
    new = resp.json()["data"]["sessionInfo"]
    assert new["refreshToken"] != kapi.refresh_token
    again = kapi.http.post(P + "/auth/refreshToken", headers={"Authorization": f"AT+{new['accessToken']}"},
                           json={"refreshToken": kapi.refresh_token})
    assert again.status_code == 401  # the old refresh token died
