"""State survives restarts (graceful and SIGKILL), including tokens and open uploads."""

from __future__ import annotations

import os

import httpx
import pytest

from cloudfs.server.testing import start_server

from .helpers import API, Api, uri


def test_restart_keeps_everything(fresh_server):
    srv = fresh_server
    with Api(srv) as api:
        api.mkdir("/keep/sub")
        data = os.urandom(5000)
        api.upload("/keep/sub/file.bin", data)
        api.call("PATCH", "/file/metadata", json={"uris": [uri("/keep/sub/file.bin")],
                                                   "patches": [{"key": "dav:x", "value": "1"}]})
        api.put("/trashed.txt", b"t")
        api.delete("/trashed.txt")
        before = api.info("/keep/sub/file.bin")["data"]
        url = api.url("/keep/sub/file.bin")
        pending = api.session("/half.bin", 30 << 20)
        used = api.ok("GET", "/user/capacity")["used"]
        first = os.urandom(25 << 20)
        assert api.chunk(pending["session_id"], 0, first)["code"] == 0
        token, refresh = api.token, api.refresh_token
    port = srv.url
    srv.restart()
    assert srv.url == port
    with Api(srv, login=False) as api:
        api.token, api.refresh_token = token, refresh
        # access and refresh tokens stay valid (same secret, persisted)
        assert api.ok("GET", "/user/me")["email"] == srv.email
        assert api.post("/session/token/refresh", {"refresh_token": refresh}, auth=False)["code"] == 0
        after = api.info("/keep/sub/file.bin")["data"]
        assert after == before
        assert api.download("/keep/sub/file.bin") == data
        assert httpx.get(url).content == data  # signed URLs survive too
        assert api.ls("/", fs="trash")["files"][0]["name"] == "trashed.txt"
        assert api.ok("GET", "/user/capacity")["used"] == used
        # the upload session and its lock survived: finish it
        assert api.call("PUT", "/file/upload", json={"uri": uri("/half.bin"), "size": 1,
                                                     "entity_type": "version"})["code"] == 40073
        rest = os.urandom((30 << 20) - (25 << 20))
        assert api.chunk(pending["session_id"], 1, rest)["code"] == 0
        assert api.download("/half.bin") == first + rest


def test_kill_does_not_corrupt(fresh_server):
    srv = fresh_server
    with Api(srv) as api:
        for i in range(20):
            api.put(f"/k{i}.txt", str(i).encode())
    srv.kill()
    srv.restart()
    with Api(srv) as api:
        assert sorted(api.names("/")) == sorted(f"k{i}.txt" for i in range(20))
        assert api.download("/k7.txt") == b"7"
        # ids are stable
        assert httpx.get(srv.url + API + "/site/ping").json()["code"] == 0


def test_one_server_per_data_dir(fresh_server):
    with pytest.raises(RuntimeError, match="used by another running server"):
        start_server(fresh_server.data_dir)


def test_graceful_stop_is_prompt(fresh_server):
    import time

    start = time.monotonic()
    fresh_server.stop()
    assert time.monotonic() - start < 5.0
    assert fresh_server._proc is not None and fresh_server._proc.returncode == 0
