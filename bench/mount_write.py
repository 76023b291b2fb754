"""Benchmark: the write side of a real mount against a baseline, in one run.

    .venv/bin/python bench/mount_write.py [--size-mib 1024] [--reps 3] [--files 2000]

* write one large file through the mount (``cp``), timed until it is on the
  server, ``cloudfs umount`` included (it waits for the upload), vs a direct
  chunked upload of the same file with the client: target ratio >= 0.8;
* untar ``--files`` files of 4 KiB onto the mount, timed until all are on
  the server: seconds and files per second (``--files 0``: not measured);
* the mount's peak RSS while ``--rss-mib`` MiB are written (0: not measured).

``--dialect koodrive`` runs it on the KooDrive emulator.

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

from harness import MiB, Mount, Row, drop_caches, environment, mount_pid, peak_rss_mib, script_main, timed

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


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    size = args.size_mib * MiB
    with environment(capacity=4 * size + args.rss_mib * MiB + (1 << 30), dialect=dialect) as (server, base):
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

        rss = 0.0
        if args.rss_mib:
            # peak RSS of the mount while a large file is written through it
            big = base / "rss.bin"
            make_file(big, args.rss_mib * MiB)
            mount.wipe_cache()
            mount.mount()
            pid = mount_pid(mount.path)
            subprocess.run(["cp", str(big), str(mount.path / "rss.bin")], check=True)
            rss = peak_rss_mib(pid)  # the upload (at close) is part of the write
            mount.umount()
            big.unlink()

        untar_times, returned_times = [], []
        for rep in range(args.reps if args.files else 0):
            mount.wipe_cache()
            mount.mount()
            target = mount.path / f"untar-{rep}"
            target.mkdir()
            start = time.perf_counter()
            subprocess.run(["tar", "xf", str(archive), "-C", str(target)], check=True)
            returned_times.append(time.perf_counter() - start)
            mount.umount()
            untar_times.append(time.perf_counter() - start)
            landed = trio.run(remote_count, server, f"/untar-{rep}")
            assert landed == args.files, f"only {landed} of {args.files} files on the server"

    mount_s, client_s = statistics.median(mount_times), statistics.median(client_times)
    print(f"cp + umount each run (s): {' '.join(f'{t:.2f}' for t in mount_times)}; "
          f"client upload: {' '.join(f'{t:.2f}' for t in client_times)}", flush=True)
    rows = [Row(f"cp {args.size_mib} MiB + umount, until on the server", f"{size / MiB / mount_s:6.0f} MiB/s",
                f"client upload {size / MiB / client_s:6.0f} MiB/s", client_s / mount_s, ">= 0.8")]
    if args.files:
        untar_s, returned_s = statistics.median(untar_times), statistics.median(returned_times)
        rows += [
            Row(f"tar x {args.files} x 4 KiB: tar returns", f"{args.files / returned_s:6.0f} files/s", "", None,
                ">= 300 /s"),
            Row(f"tar x {args.files} x 4 KiB: all on the server", f"{args.files / untar_s:6.0f} files/s", "", None,
                ">= 150 /s" if dialect == "v4" else ">= 50 /s")]
    if args.rss_mib:
        rows.append(Row(f"mount peak RSS writing {args.rss_mib} MiB", f"{rss:6.0f} MiB", "", None, "< 200 MiB"))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rss-mib", type=int, default=2048)


def main() -> None:
    script_main("write side", add_arguments, run)


if __name__ == "__main__":
    main()
