"""Benchmark: listing a real mount, against the paged listing requests it needs, in one run.

    .venv/bin/python bench/mount_list.py [--reps 5] [--dialect v4]

* ``ls -l`` of a folder of 10,000 files on a fresh mount (cold), each run
  beside the same folder's paged listing made straight with the client
  (its baseline, taken right after: a change of the machine's load changes
  both): target <= 1.5x; then warm (again, on the same mount); the mount
  process's CPU seconds per cold ``ls -l``;
* ``find`` over 20 folders of 1,000 files, cold and warm.

Used by ``mount_read.py`` (and so ``bench/all.py``) for its metadata rows.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import trio

from harness import Mount, Row, cpu_seconds, environment, mount_pid, script_main, timed

from cloudfs.client.api import CloudreveClient
from cloudfs.server.common.store import seed_bulk_folder

BIG = 10_000
TREE_FOLDERS, TREE_FILES = 20, 1_000


def seed(server) -> None:  # type: ignore[no-untyped-def]
    """The folders listed: ``/big`` (10,000 files) and ``/tree`` (20 x 1,000)."""
    seed_bulk_folder(server.data_dir, ["big"], BIG, email=server.email)
    for i in range(TREE_FOLDERS):
        seed_bulk_folder(server.data_dir, ["tree", f"d{i:02d}"], TREE_FILES, email=server.email)


async def raw_listing(server, folder: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds for the paged listing requests of ``folder`` (after connecting)."""
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client:
        start = time.perf_counter()
        await client.list_all(folder)
        return time.perf_counter() - start


def listing_rows(server, mount: Mount, reps: int) -> list[Row]:  # type: ignore[no-untyped-def]
    """The rows of ``ls -l`` (with its baseline) and ``find`` over the seeded folders."""
    def quiet(command: list[str]) -> float:
        return timed(lambda: subprocess.run(command, stdout=subprocess.DEVNULL, check=True))

    rows = []
    ls = ["ls", "-l", str(mount.path / "big")]
    colds, warms, raws, cpus = [], [], [], []
    for _ in range(reps):
        mount.mount()
        pid = mount_pid(mount.path)
        before = cpu_seconds(pid)
        colds.append(quiet(ls))
        cpus.append(cpu_seconds(pid) - before)
        warms.append(quiet(ls))
        mount.umount()
        raws.append(trio.run(raw_listing, server, "/big"))
    cold_s, raw_s = statistics.median(colds), statistics.median(raws)
    rows.append(Row(f"ls -l, {BIG:,} entries, cold", f"{cold_s:.3f} s", f"paged listing {raw_s:.3f} s",
                    raw_s / cold_s, ">= 0.67 (<= 1.5x)"))
    # each run's own ratio (a baseline right after its ls -l): steadier on a machine whose load drifts
    paired = statistics.median(raw / cold for raw, cold in zip(raws, colds))
    rows.append(Row("  the same, median of each run's ratio", "", "", paired, ">= 0.67"))
    rows.append(Row(f"ls -l, {BIG:,} entries, warm", f"{statistics.median(warms):.3f} s"))
    rows.append(Row("  mount CPU per cold ls -l", f"{statistics.median(cpus):.3f} s"))
    find = ["find", str(mount.path / "tree")]
    colds, warms = [], []
    for _ in range(reps):
        mount.mount()
        colds.append(quiet(find))
        warms.append(quiet(find))
        mount.umount()
    rows.append(Row(f"find, {TREE_FOLDERS * TREE_FILES:,} entries, cold / warm",
                    f"{statistics.median(colds):.3f} / {statistics.median(warms):.3f} s"))
    return rows


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    with environment(dialect=dialect) as (server, base):
        seed(server)
        mount = Mount(server, base / "mnt", base / "mcache", options="metadata_ttl=600")
        return listing_rows(server, mount, args.reps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=5)


def main() -> None:
    script_main("listing", add_arguments, run)


if __name__ == "__main__":
    main()
