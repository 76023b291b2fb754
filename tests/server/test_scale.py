"""Concurrency and large folders."""

from __future__ import annotations

import time

import httpx
import trio

from cloudfs.server.common.store import seed_bulk_folder

from .helpers import API, Api, uri


async def test_64_concurrent_requests(fresh_server):
    srv = fresh_server
    with Api(srv) as api:
        api.mkdir("/conc")
        headers = api.headers()
    results: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=srv.url + API, headers=headers, limits=limits, timeout=60) as client:
        async def one(i: int) -> None:
            kind = i % 4
            if kind == 0:
                resp = await client.put("/file/content", params={"uri": uri(f"/conc/f{i}.txt")},
                                        content=str(i).encode() * 1000)
            elif kind == 1:
                resp = await client.post("/file/create", json={"uri": uri(f"/conc/d{i}/x"), "type": "folder"})
            elif kind == 2:
                resp = await client.get("/file", params={"uri": uri("/conc"), "page_size": 50})
            else:
                resp = await client.get("/user/capacity")
            results[i] = resp.json()["code"]

        async with trio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(one, i)
    assert results == {i: 0 for i in range(64)}
    with Api(srv) as api:
        names = api.names("/conc")
        assert sorted(names) == sorted([f"d{i}" for i in range(1, 64, 4)] + [f"f{i}.txt" for i in range(0, 64, 4)])
        assert api.download("/conc/f8.txt") == b"8" * 1000
        assert api.ok("GET", "/user/capacity")["used"] == sum(len(str(i)) * 1000 for i in range(0, 64, 4))


def test_100k_folder_pages(fresh_server):
    srv = fresh_server
    seed_bulk_folder(srv.data_dir, ["big"], 100_000, folders=50)
    with Api(srv) as api:
        for order, direction in (("", "asc"), ("name", "desc")):
            seen: list[str] = []
            token = None
            slowest, first = 0.0, None
            while True:
                params = {"uri": uri("/big"), "page_size": 2000, "order_by": order, "order_direction": direction}
                if token:
                    params["next_page_token"] = token
                start = time.perf_counter()
                data = api.ok("GET", "/file", params=params)
                elapsed = time.perf_counter() - start
                slowest = max(slowest, elapsed)
                first = elapsed if first is None else first
                seen += [f["name"] for f in data["files"]]
                token = data["pagination"].get("next_token")
                if not token:
                    break
            assert len(seen) == 100_050 and len(set(seen)) == 100_050, order
            assert all(n.startswith("d") for n in seen[:50])
            files = seen[50:]
            if order == "name":
                assert files == sorted(files, reverse=True)
            else:
                assert files == sorted(files)
            # keyset pagination: deep pages cost about what the first one did
            assert slowest < max(2.0, 5 * first), (order, slowest, first)
        # a page deep inside, ordered by mtime, straight from its cursor
        data = api.ok("GET", "/file", params={"uri": uri("/big"), "page_size": 100, "order_by": "updated_at",
                                               "order_direction": "desc"})
        assert data["files"][0]["type"] == 1 and data["pagination"]["next_token"]
        # the folder itself is cheap to stat and its parent listing is unaffected
        assert api.info("/big")["code"] == 0
        assert api.names("/") == ["big"]
