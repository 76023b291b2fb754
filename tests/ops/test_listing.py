"""A folder's listing as readdir hands it out (fs/listing.py, Core.open_listing).

A cold listing of a large folder is several paged requests: readdir hands
out the pages already here while the next ones are fetched, and stops
fetching when the folder is closed.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pytest
import trio

from cloudfs.fs.errors import FsError
from cloudfs.server.common.store import seed_bulk_folder
from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount

pytestmark = pytest.mark.v4_only("Cloudreve 3 lists a folder in one answer; KooDrive's link names need every page")

FILES = 2_500  # three pages of the client's 1,000
LISTING = r"^/api/v4/file$"  # the paged listing (not /file/info, a stat)
LATENCY_S = 0.5


def seeded(server: RunningServer) -> str:
    name = f"paged-{uuid.uuid4().hex[:8]}"
    seed_bulk_folder(server.data_dir, [name], FILES, email=server.email)
    return f"/{name}"


async def test_readdir_hands_out_the_first_page_before_the_last_arrives(
    fresh_server: RunningServer, tmp_path: Path,
) -> None:
    folder = seeded(fresh_server)
    async with ops_mount(fresh_server, tmp_path) as mount:
        node = mount.core.node(await Driver(mount).inode(folder))
        fresh_server.faults.set(path_regex=LISTING, latency_s=LATENCY_S)
        listing = await mount.core.open_listing(node)
        await listing.wait_beyond(0)
        # the next page is still on its way (each takes LATENCY_S)
        assert len(listing.shown) == 1_000 and not listing.done
        await listing.wait_beyond(FILES)  # until the pass ends
        names = [name.decode() for name, _ in listing.shown]
        assert names == sorted(names) and len(set(names)) == FILES
        assert fresh_server.faults.stats()["matched"] == 3
        # the whole listing is known now: the next pass asks nothing
        again = await mount.core.open_listing(node)
        assert again.done and [entry for _, entry in again.shown] == [entry for _, entry in listing.shown]
        assert fresh_server.faults.stats()["matched"] == 3


async def test_closing_a_folder_stops_fetching_its_pages(fresh_server: RunningServer, tmp_path: Path) -> None:
    folder = seeded(fresh_server)
    async with ops_mount(fresh_server, tmp_path) as mount:
        ops = mount.ops
        ino = await Driver(mount).inode(folder)
        fresh_server.faults.set(path_regex=LISTING, latency_s=LATENCY_S)
        fh = await ops.opendir(ino, None)  # type: ignore[arg-type]
        handle = mount.core.handles.dirs[fh]
        handle.listing = listing = await mount.core.open_listing(handle.node)  # (readdir's first step)
        await listing.wait_beyond(0)
        await ops.releasedir(fh)
        with pytest.raises(FsError) as info:
            await listing.wait_beyond(FILES)
        assert info.value.errno == errno.EINTR
        await trio.sleep(3 * LATENCY_S)
        # the first page, and at most the next one, cut short: never the third
        assert fresh_server.faults.stats()["matched"] <= 2
        assert mount.core.meta.listing(folder) is None  # an unfinished pass is not kept
