"""Lookups of names the metadata cache does not know (fs/misses.py).

After a remount ``git status`` lstats every file of the repository: a run of
lookups in one unlisted folder is answered from one listing of the folder,
not a stat each; a lone lookup still costs one stat and no listing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from cloudfs.cli.serve import Mount
from cloudfs.fs.misses import LIST_AFTER_MISSES
from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount

ON_KOODRIVE = True

NAMES = 12
#: every request the mount makes (counted, not failed)
ANY_REQUEST = r"."


async def _seed(server: RunningServer, base: Path) -> str:
    """A folder of NAMES files, written by another mount (this one starts cold)."""
    top = f"/storm-{uuid.uuid4().hex[:8]}"
    async with ops_mount(server, base) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        for i in range(NAMES):
            await fs.write_file(f"{top}/f{i:02d}", b"x")
        assert await mount.writeback.drain() == []
    return top


async def _requests(server: RunningServer, mount: Mount, action: object) -> int:
    """The server requests ``action()`` (awaited) makes."""
    server.faults.set(path_regex=ANY_REQUEST, latency_s=0.0)
    try:
        await action()  # type: ignore[operator]
        return int(server.faults.stats()["matched"])
    finally:
        server.faults.clear()


async def _costs(server: RunningServer, mount: Mount, top: str) -> tuple[int, int]:
    """What one stat and one listing of ``top`` cost on this dialect (the
    mount's caches are left as they were)."""
    stat = await _requests(server, mount, lambda: mount.client.stat(f"{top}/f00"))
    listing = await _requests(server, mount, lambda: mount.client.list_all(top))
    return stat, listing


@asynccontextmanager
async def _cold(server: RunningServer, base: Path) -> AsyncIterator[tuple[Mount, Driver, str, int, int]]:
    """A fresh mount, the seeded folder (looked up, not listed) and what a
    stat and a listing of it cost: (mount, driver, folder, stat, listing)."""
    top = await _seed(server, base / "writer")
    async with ops_mount(server, base / "reader") as mount:
        fs = Driver(mount)
        await fs.inode(top)  # (the folder itself: a lookup in /)
        stat, listing = await _costs(server, mount, top)
        yield mount, fs, top, stat, listing


async def test_a_run_of_lookups_in_one_folder_is_answered_by_its_listing(
    fresh_server: RunningServer, tmp_path: Path,
) -> None:
    async with _cold(fresh_server, tmp_path) as (mount, fs, top, stat, listing):

        async def lookups() -> None:
            for i in range(NAMES):
                await fs.inode(f"{top}/f{i:02d}")
            await fs.inode(f"{top}/f00")  # (known now: no request)

        made = await _requests(fresh_server, mount, lookups)
        assert made <= (LIST_AFTER_MISSES - 1) * stat + listing < NAMES * stat
        assert await _requests(fresh_server, mount, lambda: fs.inode(f"{top}/f05")) == 0
        # the listing answered the names it had, as stats would have; a name
        # it lacks is still asked for (a stat, then a negative entry), so a
        # file another client makes there shows at once, in lookups and readdir
        folder = mount.core.node(await fs.inode(top))
        missing = lambda: mount.core.child_or_none(folder, "nothing")  # noqa: E731
        assert await _requests(fresh_server, mount, missing) <= 2 * stat  # (v3, KooDrive: "nothing" and its link name)
        assert await _requests(fresh_server, mount, missing) == 0  # (the negative entry)
        assert mount.core.meta.listing(top) is None
        await mount.client.create_file(f"{top}/late")
        assert await fs.inode(f"{top}/late")
        assert "late" in [entry.name for entry in await mount.core.listing(folder)]


async def test_concurrent_lookups_wait_for_the_one_listing(fresh_server: RunningServer, tmp_path: Path) -> None:
    async with _cold(fresh_server, tmp_path) as (mount, fs, top, stat, listing):
        found: dict[str, int] = {}

        async def lookup(name: str) -> None:
            found[name] = await fs.inode(f"{top}/{name}")

        async def lookups() -> None:
            async with trio.open_nursery() as nursery:
                for i in range(NAMES):
                    nursery.start_soon(lookup, f"f{i:02d}")

        made = await _requests(fresh_server, mount, lookups)
        assert made <= (LIST_AFTER_MISSES - 1) * stat + listing < NAMES * stat
        assert len(set(found.values())) == NAMES and all(found.values())


async def test_a_lone_lookup_costs_one_stat_and_no_listing(fresh_server: RunningServer, tmp_path: Path) -> None:
    async with _cold(fresh_server, tmp_path) as (mount, fs, top, stat, _):
        # (a listing would add requests: on v4 a stat is one, on v3 and KooDrive the folder's listing)
        assert await _requests(fresh_server, mount, lambda: fs.inode(f"{top}/f03")) == stat


async def test_once_the_ttl_passed_a_run_of_getattrs_is_answered_by_one_listing(
    fresh_server: RunningServer, tmp_path: Path,
) -> None:
    top = await _seed(fresh_server, tmp_path / "writer")
    ttl_s = 1.0
    async with ops_mount(fresh_server, tmp_path / "reader", metadata_ttl_s=ttl_s) as mount:
        fs = Driver(mount)
        inodes = [await fs.inode(f"{top}/f{i:02d}") for i in range(NAMES)]
        stat, listing = await _costs(fresh_server, mount, top)
        await trio.sleep(ttl_s * 1.2)  # every entry expired

        async def getattrs() -> None:
            for ino in inodes:
                await mount.ops.getattr(ino, None)  # type: ignore[arg-type]

        assert await _requests(fresh_server, mount, getattrs) <= (LIST_AFTER_MISSES - 1) * stat + listing
        await trio.sleep(ttl_s * 1.2)

        async def lookups() -> None:  # (the kernel revalidating its names)
            for i in range(NAMES):
                await fs.inode(f"{top}/f{i:02d}")

        # (and the folder itself, in /)
        assert await _requests(fresh_server, mount, lookups) <= stat + (LIST_AFTER_MISSES - 1) * stat + listing
