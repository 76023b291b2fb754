"""v3 dialect: persistence across restarts, fault injection, seeding helpers, in-process serving."""

from __future__ import annotations

import os
import time

import httpx
import pytest
import trio

from cloudfs.server import ServerConfig, serve
from cloudfs.server.common.store import seed_bulk_folder
from cloudfs.server.testing import start_server
from cloudfs.server.testing.demo_tree import (
    DEMO_FILES,
    LARGE_NAME,
    LARGE_SIZE,
    seed_demo_tree,
)

from .helpers import large_demo_sha256, streamed_sha256
from .v3helpers import API3, Api3

TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def test_restart_keeps_tree_sessions_urls_and_uploads(v3_fresh_server):
    srv = v3_fresh_server
    with Api3(srv) as api:
        data = os.urandom(3000)
        api.upload("/keep/sub/file.bin", data, last_modified=1714481625683)
        before = api.objects("/keep/sub")
        url = api.url("/keep/sub/file.bin")
        pending = api.session("/keep", "half.bin", 30 << 20)["data"]["sessionID"]
        first = os.urandom(25 << 20)
        assert api.chunk(pending, 0, first)["code"] == 0
        used = api.storage()["used"]
        cookie = api.http.cookies.get("cloudreve-session")
    srv.restart()
    with Api3(srv, login=False) as api:
        api.http.cookies.set("cloudreve-session", cookie)
        assert api.storage()["used"] == used  # the login session survived
        assert api.objects("/keep/sub") == before
        assert httpx.get(srv.url + url).content == data  # so did the download session
        rest = os.urandom(5 << 20)
        assert api.chunk(pending, 1, rest) == {"code": 0, "msg": ""}  # and the upload session
        assert api.download("/keep/half.bin").content == first + rest


def test_kill_does_not_corrupt(v3_fresh_server):
    srv = v3_fresh_server
    with Api3(srv) as api:
        for i in range(10):
            api.upload(f"/k{i}.txt", str(i).encode())
        ids = {o["name"]: o["id"] for o in api.ls("/")["objects"]}
    srv.kill()
    srv.restart()
    with Api3(srv) as api:
        assert {o["name"]: o["id"] for o in api.ls("/")["objects"]} == ids
        assert api.download("/k7.txt").content == b"7"


def test_expire_tokens_ends_every_session(v3_server, api3):
    assert api3.storage()["total"] > 0
    v3_server.faults.expire_tokens()
    assert api3.get("/user/storage") == {"code": 401, "msg": "Login required"}
    api3.login()  # a new login works right away
    assert api3.get("/user/storage")["code"] == 0
    assert v3_server.faults.stats()["token_expiry"] == 1


def test_low_capacity(v3_server, api3):
    v3_server.faults.set_capacity(0)
    assert api3.storage() == {"used": api3.storage()["used"], "free": 0, "total": 0}
    assert api3.session("/", "nope.bin", 1) == {"code": 40051, "msg": "Insufficient capacity"}
    v3_server.faults.set_capacity(None)
    assert api3.storage()["total"] == 1 << 30


def test_error_and_latency_injection(v3_server, api3):
    v3_server.faults.set(error_rate=1.0, error_status=503, path_regex=r"^/api/v3/directory", count=1)
    resp = api3.request("GET", "/directory/")
    assert resp.status_code == 503 and resp.text == "injected fault\n"
    assert api3.ls("/") is not None
    v3_server.faults.set(latency_s=0.3, path_regex=r"/site/ping$", count=1)
    start = time.perf_counter()
    assert httpx.get(v3_server.url + API3 + "/site/ping").json()["code"] == 0
    assert time.perf_counter() - start >= 0.3


def test_drop_response_of_download(v3_server, api3):
    data = os.urandom(1 << 20)
    api3.upload("/fault/big.bin", data)
    url = api3.url("/fault/big.bin")
    v3_server.faults.set(drop_rate=1.0, drop_after_bytes=1000, drop_target="response",
                         path_regex="/file/download/", count=1)
    with pytest.raises(TRANSPORT_ERRORS):
        httpx.get(v3_server.url + url)
    assert httpx.get(v3_server.url + url).content == data


def test_fault_flags_on_command_line(tmp_path):
    args = ["--dialect", "v3", "--fault-error-rate", "1", "--fault-error-status", "504",
            "--fault-path", "/site/config", "--fault-count", "1", "--fault-capacity", "1234"]
    with start_server(tmp_path, extra_args=args) as srv, Api3(srv) as api:
        assert srv.dialect == "v3" and srv.api == "/api/v3"
        assert httpx.get(srv.url + API3 + "/site/config").status_code == 504
        assert httpx.get(srv.url + API3 + "/site/config").status_code == 200
        assert api.storage()["total"] == 1234


def test_seed_demo_tree_on_v3(v3_fresh_server):
    created = seed_demo_tree(v3_fresh_server.data_dir)
    assert created >= len(DEMO_FILES)
    assert seed_demo_tree(v3_fresh_server.data_dir) == 0
    with Api3(v3_fresh_server) as api:
        assert {"Documents", "Photos", "Music", "Ünïcödé 日本語", "Large", "README.txt"} <= set(api.names("/"))
        assert api.download("/Ünïcödé 日本語/emoji 🎉.txt").content == "🎉🎈\n".encode()
        assert api.objects("/Large")[LARGE_NAME]["size"] == LARGE_SIZE
        assert api.objects("/")["empty.txt"]["size"] == 0
        assert api.names("/Empty folder") == []
        assert streamed_sha256(api, api.url(f"/Large/{LARGE_NAME}")) == large_demo_sha256()
        assert api.storage()["used"] > LARGE_SIZE


def test_seed_bulk_folder_on_v3(v3_fresh_server):
    seed_bulk_folder(v3_fresh_server.data_dir, ["bulk", "inner"], 5000, folders=3)
    with Api3(v3_fresh_server) as api:
        start = time.perf_counter()
        objects = api.ls("/bulk/inner")["objects"]
        assert time.perf_counter() - start < 10
        assert len(objects) == 5003
        assert [o["type"] for o in objects[:3]] == ["dir"] * 3
        assert objects[3]["name"] == "f0000" and objects[-1]["name"] == "f4999"
        props = api.ok("GET", f"/object/property/{api.folder_id('/bulk/inner')}", params={"is_folder": "true"})
        assert props["child_file_num"] == 5000 and props["child_folder_num"] == 3


async def test_serve_in_process_v3(tmp_path):
    config = ServerConfig(data_dir=tmp_path, port=0, chunk_size=4096, dialect="v3", url_ttl=600)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=url + API3) as client:
            assert (await client.get("/site/ping")).json()["data"] == "3.8.3"
            login = await client.post("/user/session", json={"userName": config.user, "Password": config.password})
            assert login.json()["code"] == 0
            assert (await client.put("/directory", json={"path": "/in/proc"})).json()["code"] == 0
            listing = (await client.get("/directory/in")).json()
            assert [o["name"] for o in listing["data"]["objects"]] == ["proc"]
        nursery.cancel_scope.cancel()


async def test_concurrent_requests(v3_fresh_server):
    srv = v3_fresh_server
    with Api3(srv) as api:
        api.mkdir("/conc")
        cookies = dict(api.http.cookies)
        policy = api.policy()
    results: dict[int, int] = {}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=srv.url + API3, cookies=cookies, limits=limits, timeout=60) as client:
        async def one(i: int) -> None:
            kind = i % 4
            if kind == 0:
                sess = (await client.put("/file/upload", json={"path": "/conc", "name": f"f{i}.txt", "size": 3,
                                                               "policy_id": policy})).json()
                resp = await client.post(f"/file/upload/{sess['data']['sessionID']}/0", content=b"abc")
            elif kind == 1:
                resp = await client.put("/directory", json={"path": f"/conc/d{i}/x"})
            elif kind == 2:
                resp = await client.get("/directory/conc")
            else:
                resp = await client.get("/user/storage")
            results[i] = resp.json()["code"]

        async with trio.open_nursery() as nursery:
            for i in range(32):
                nursery.start_soon(one, i)
    assert results == {i: 0 for i in range(32)}
    with Api3(srv) as api:
        assert sum(1 for n in api.names("/conc") if n.endswith(".txt")) == 8
        assert api.storage()["used"] == 24
