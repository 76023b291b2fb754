"""The in-process runner (trio) and the demo tree seeder."""

from __future__ import annotations


import httpx
import trio

from cloudfs.server import ServerConfig, serve
from cloudfs.server.testing.demo_tree import (
    DEMO_FILES,
    LARGE_NAME,
    LARGE_SIZE,
    seed_demo_tree,
)

from .helpers import API, Api, large_demo_sha256, streamed_sha256, uri


async def test_serve_in_process(tmp_path):
    config = ServerConfig(data_dir=tmp_path, port=0, chunk_size=4096)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, config)
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url + API) as client:
            assert (await client.get("/site/ping")).json()["data"] == "4.14.0"
            login = (await client.post("/session/token", json={"email": config.user,
                                                               "password": config.password})).json()
            headers = {"Authorization": "Bearer " + login["data"]["token"]["access_token"]}
            made = (await client.put("/file/content", params={"uri": uri("/inproc.txt")}, content=b"hi",
                                     headers=headers)).json()
            assert made["code"] == 0 and made["data"]["size"] == 2
            listing = (await client.get("/file", params={"uri": "cloudreve://my/"}, headers=headers)).json()
            assert [f["name"] for f in listing["data"]["files"]] == ["inproc.txt"]
        nursery.cancel_scope.cancel()
    # state is on disk: a second in-process server sees it
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=url + API) as client:
            login = (await client.post("/session/token", json={"email": config.user,
                                                               "password": config.password})).json()
            headers = {"Authorization": "Bearer " + login["data"]["token"]["access_token"]}
            info = (await client.get("/file/info", params={"uri": uri("/inproc.txt")}, headers=headers)).json()
            assert info["data"]["size"] == 2
        nursery.cancel_scope.cancel()


def test_seed_demo_tree(fresh_server):
    created = seed_demo_tree(fresh_server.data_dir)
    assert created >= len(DEMO_FILES)
    assert seed_demo_tree(fresh_server.data_dir) == 0  # idempotent
    with Api(fresh_server) as api:
        root = api.names("/")
        assert {"Documents", "Photos", "Music", "Ünïcödé 日本語", "Large", "README.txt"} <= set(root)
        assert "こんにちは.txt" in api.names("/Ünïcödé 日本語")
        assert api.download("/Ünïcödé 日本語/emoji 🎉.txt") == "🎉🎈\n".encode()
        big = api.info(f"/Large/{LARGE_NAME}")["data"]
        assert big["size"] == LARGE_SIZE
        assert streamed_sha256(api, api.url(f"/Large/{LARGE_NAME}")) == large_demo_sha256()
        assert api.ok("GET", "/user/capacity")["used"] > LARGE_SIZE
        assert api.names("/Empty folder") == []
        assert api.info("/empty.txt")["data"]["size"] == 0
