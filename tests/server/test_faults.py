"""Fault injection: latency, 5xx, dropped connections, token expiry, low capacity."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from cloudfs.server.testing import start_server

from .helpers import API, Api, uri

TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def test_latency_with_count_and_path_filter(server):
    server.faults.set(latency_s=0.4, path_regex=r"/site/ping$", count=1)
    start = time.perf_counter()
    assert httpx.get(server.url + API + "/site/ping").json()["code"] == 0
    assert time.perf_counter() - start >= 0.4
    start = time.perf_counter()
    httpx.get(server.url + API + "/site/ping")
    assert time.perf_counter() - start < 0.3
    stats = server.faults.stats()
    assert stats["latency"] == 1 and stats["matched"] == 1


def test_error_status(server, api):
    server.faults.set(error_rate=1.0, error_status=503, path_regex=r"^/api/v4/file$", count=2)
    for _ in range(2):
        resp = api.request("GET", "/file", params={"uri": "cloudreve://my/"})
        assert resp.status_code == 503 and resp.text == "injected fault\n"
    assert api.request("GET", "/file", params={"uri": "cloudreve://my/"}).status_code == 200
    # other paths are never affected by the filter
    assert api.get("/user/me")["code"] == 0
    assert server.faults.stats()["error"] == 2


def test_error_on_upload_keeps_body_framing(server, api):
    server.faults.set(error_rate=1.0, error_status=502, path_regex="/file/content$", count=1)
    resp = api.request("PUT", "/file/content", params={"uri": uri("/fault-put.txt")}, content=b"x" * 100_000)
    assert resp.status_code == 502
    assert api.put("/fault-put.txt", b"ok")["size"] == 2


def test_seeded_rates_are_reproducible(server):
    def run() -> list[int]:
        server.faults.set(error_rate=0.5, seed=42, path_regex="/site/ping")
        return [httpx.get(server.url + API + "/site/ping").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second and set(first) == {200, 500}


def test_drop_response_body(server, api):
    data = os.urandom(1 << 20)
    api.put("/drop-me.bin", data)
    url = api.url("/drop-me.bin")
    server.faults.set(drop_rate=1.0, drop_after_bytes=1000, drop_target="response",
                      path_regex="/file/content/", count=1)
    with pytest.raises(TRANSPORT_ERRORS):
        httpx.get(url)
    assert httpx.get(url).content == data
    assert server.faults.stats()["drop_response"] == 1


def test_drop_request_body_during_chunk(server, api):
    data = os.urandom(3 << 20)
    sess = api.session("/drop-upload.bin", len(data))
    server.faults.set(drop_rate=1.0, drop_after_bytes=100_000, path_regex="/file/upload/", count=1)
    with pytest.raises(TRANSPORT_ERRORS):
        api.request("POST", f"/file/upload/{sess['session_id']}/0", content=data)
    assert server.faults.stats()["drop_request"] == 1
    # nothing completed, the session is intact and a retry succeeds
    assert api.info("/drop-upload.bin")["data"]["size"] == 0
    assert api.chunk(sess["session_id"], 0, data)["code"] == 0
    assert api.download("/drop-upload.bin") == data


def test_drop_request_of_direct_write_cleans_up(server, api):
    server.faults.set(drop_rate=1.0, drop_after_bytes=10, path_regex="/file/content$", count=1)
    used = api.ok("GET", "/user/capacity")["used"]
    with pytest.raises(TRANSPORT_ERRORS):
        api.request("PUT", "/file/content", params={"uri": uri("/dropped-put.bin")}, content=b"z" * 500_000)
    for _ in range(50):  # the server notices the disconnect asynchronously
        if "dropped-put.bin" not in api.names("/"):
            break
        time.sleep(0.05)
    assert "dropped-put.bin" not in api.names("/")
    assert api.ok("GET", "/user/capacity")["used"] == used


def test_garble_cuts_json_answers_and_downloads_with_valid_framing(server, api):
    data = os.urandom(100_000)
    api.put("/garble-me.bin", data)
    url = api.url("/garble-me.bin")
    server.faults.set(garble_rate=1.0, path_regex=r"^/api/v4/file/info$", count=1)
    resp = api.request("GET", "/file/info", params={"uri": uri("/garble-me.bin")})
    # a complete HTTP answer (no transport error), status kept, but the JSON is cut
    assert resp.status_code == 200 and 0 < len(resp.content)
    assert resp.headers["content-length"] == str(len(resp.content))
    with pytest.raises(ValueError):
        resp.json()
    assert api.info("/garble-me.bin")["data"]["size"] == len(data)
    server.faults.set(garble_rate=1.0, path_regex="/file/content/", count=1)
    cut = httpx.get(url)
    assert cut.status_code == 200 and cut.content == data[:50_000]
    assert httpx.get(url).content == data
    assert server.faults.stats()["garble"] == 2


def test_reply_delay_acts_before_answering(server, api):
    # the server has done the work when the answer is still held back: a
    # client that gives up early finds the effect anyway
    server.faults.set(reply_delay_s=2.0, path_regex=r"^/api/v4/file/create$", count=1)
    with pytest.raises(httpx.TimeoutException):
        api.http.post(API + "/file/create", json={"uri": uri("/late-answer.txt"), "type": "file"},
                      headers=api.headers(), timeout=0.5)
    assert api.info("/late-answer.txt")["code"] == 0
    assert server.faults.stats()["reply_delay"] == 1


def test_expire_tokens(server, api):
    assert api.get("/user/me")["code"] == 0
    server.faults.expire_tokens()
    assert api.get("/user/me")["code"] == 401
    # anonymous, not an error, on the file API too
    assert api.get("/file", {"uri": "cloudreve://my/"})["code"] == 401
    refreshed = api.post("/session/token/refresh", {"refresh_token": api.refresh_token}, auth=False)
    assert refreshed["code"] == 0
    api.token = refreshed["data"]["access_token"]
    assert api.get("/user/me")["code"] == 0  # a token issued right after the expiry works
    assert server.faults.stats()["token_expiry"] == 1


def test_low_capacity(server, api):
    server.faults.set_capacity(0)
    assert api.ok("GET", "/user/capacity")["total"] == 0
    assert api.call("PUT", "/file/upload", json={"uri": uri("/nope.bin"), "size": 1})["code"] == 40051
    server.faults.set_capacity(None)
    assert api.ok("GET", "/user/capacity")["total"] == 1 << 30
    assert server.faults.stats()["capacity"] == 1


def test_clear_resets_everything(server, api):
    server.faults.set(error_rate=1.0, path_regex="/site/ping")
    server.faults.set_capacity(5)
    server.faults.expire_tokens()
    server.faults.clear()
    state = server.faults.state()
    assert state["rule"] is None and state["capacity_override"] is None
    assert state["stats"] == dict.fromkeys(("matched", "latency", "error", "drop_request", "drop_response",
                                            "garble", "reply_delay", "token_expiry", "capacity"), 0)
    assert httpx.get(server.url + API + "/site/ping").status_code == 200
    assert api.get("/user/me")["code"] == 0


def test_control_channel_validation(server):
    resp = httpx.post(server.url + "/_cloudfs/faults", json={"nonsense": 1})
    assert resp.status_code == 400
    resp = httpx.post(server.url + "/_cloudfs/faults", json={"path_regex": "("})
    assert resp.status_code == 400


def test_faults_absent_unless_enabled(tmp_path):
    with start_server(tmp_path, faults=False) as srv:
        assert httpx.get(srv.url + "/_cloudfs/faults").status_code == 404
        assert httpx.post(srv.url + "/_cloudfs/faults/expire-tokens").status_code == 404


def test_fault_flags_on_command_line(tmp_path):
    args = ["--fault-error-rate", "1", "--fault-error-status", "504", "--fault-path", "/site/config",
            "--fault-count", "1", "--fault-capacity", "1234"]
    with start_server(tmp_path, extra_args=args) as srv, Api(srv) as api:
        assert httpx.get(srv.url + API + "/site/config/basic").status_code == 504
        assert httpx.get(srv.url + API + "/site/config/basic").status_code == 200
        assert api.ok("GET", "/user/capacity")["total"] == 1234
