"""Benchmark: the write side of a real mount against a baseline, in one run.

    .venv/bin/python bench/mount_write.py [--size-mib 1024] [--reps 3] [--files 2000]

* write one large file through the mount (``cp``), timed until it is on the
  server, ``cloudfs umount`` included (it waits for the upload), vs a direct
  chunked upload of the same file with the client: target ratio >= 0.8;
* untar ``--files`` files of 4 KiB onto the mount, timed until all are on
  the server: seconds and files per second.

Prints medians of ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tarfile
import time
from pathlib import Path

import trio

from harness import MiB, Mount, drop_caches, environment, rate, report, timed

from cloudfs.client.api import CloudreveClient


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as fp:
        for _ in range(size // (16 * MiB)):
            fp.write(os.urandom(16 * MiB))
        fp.write(os.urandom(size % (16 * MiB)))


def make_tar(path: Path, count: int) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"d{i // 200:02d}/f{i:05d}.bin")
            info.size = 4096
            tar.addfile(info, io.BytesIO(os.urandom(4096)))


async def client_upload(server, source: Path, target: str) -> float:  # type: ignore[no-untyped-def]
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client:
        start = time.perf_counter()
        await client.upload(target, source)
        elapsed = time.perf_counter() - start
        await client.delete([target], permanent=True)
        return elapsed


async def remote_count(server, folder: str) -> int:  # type: ignore[no-untyped-def]
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client:
        total = 0
        _, children = await client.list_all(folder)
        for child in children:
            if child.is_dir:
                total += len((await client.list_all(child.path))[1])
        return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dialect", choices=["v4", "v3"], default="v4", help="server dialect (v4)")
    args = parser.parse_args()
    size = args.size_mib * MiB

    with environment(capacity=4 * size + (1 << 30), dialect=args.dialect) as (server, base):
        source = base / "source.bin"
        make_file(source, size)
        archive = base / "small.tar"
        make_tar(archive, args.files)
        mount = Mount(server, base / "mnt", base / "mcache", options="delete=permanent")

        mount_times, client_times = [], []
        for rep in range(args.reps):
            drop_caches()
            client_times.append(trio.run(client_upload, server, source, f"/direct-{rep}.bin"))
            mount.wipe_cache()
            mount.mount()
            drop_caches()

            def write_and_unmount() -> None:
                subprocess.run(["cp", str(source), str(mount.path / f"copied-{rep}.bin")], check=True)
                mount.umount()  # returns once the upload landed

            mount_times.append(timed(write_and_unmount))
            mount.mount()
            os.unlink(mount.path / f"copied-{rep}.bin")
            mount.umount()

        untar_times = []
        for rep in range(args.reps):
            mount.wipe_cache()
            mount.mount()
            target = mount.path / f"untar-{rep}"
            target.mkdir()

            def untar_and_unmount() -> None:
                subprocess.run(["tar", "xf", str(archive), "-C", str(target)], check=True)
                mount.umount()

            untar_times.append(timed(untar_and_unmount))
            landed = trio.run(remote_count, server, f"/untar-{rep}")
            assert landed == args.files, f"only {landed} of {args.files} files on the server"

    mount_s, client_s = statistics.median(mount_times), statistics.median(client_times)
    untar_s = statistics.median(untar_times)
    report(f"write {args.size_mib} MiB until on the server, median of {args.reps}", [
        ("mount (cp + umount)", f"{mount_s:7.2f} s  {rate(size, mount_s)}"),
        ("client upload", f"{client_s:7.2f} s  {rate(size, client_s)}"),
        ("ratio mount/client", f"{client_s / mount_s:7.2f}   (target >= 0.8)"),
    ])
    report(f"untar {args.files} files of 4 KiB until on the server, median of {args.reps}", [
        ("time", f"{untar_s:7.2f} s"),
        ("files per second", f"{args.files / untar_s:7.0f}"),
    ])


if __name__ == "__main__":
    main()
