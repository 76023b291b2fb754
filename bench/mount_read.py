"""Benchmark: the read side of a real mount against baselines, in one run.

    .venv/bin/python bench/mount_read.py [--size-mib 1024] [--reps 3]

* cold sequential read of one large file through the mount (empty block
  cache, kernel caches dropped) vs ``curl`` of the same file's signed URL
  from the same server: target ratio >= 0.8;
* warm re-read (from the block cache, after a remount) vs reading the cache
  file directly;
* ``ls -l`` of a 10,000-entry folder, cold (fresh mount) and warm;
* ``find`` over a 20,000-entry tree, cold and warm;
* random 4 KiB reads per second on a cold cache.

Run as root (drops the kernel's caches between runs).  Prints medians.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import time
from pathlib import Path

import trio

from harness import MiB, Mount, drop_caches, environment, median_of, rate, report, timed

from cloudfs.client.api import CloudreveClient
from cloudfs.server.store import seed_bulk_folder


def read_all(path: Path, block: int = MiB) -> int:
    total = 0
    with open(path, "rb", buffering=0) as fp:
        buf = bytearray(block)
        while n := fp.readinto(buf):
            total += n
    return total


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as fp:
        for _ in range(size // (16 * MiB)):
            fp.write(os.urandom(16 * MiB))
        fp.write(os.urandom(size % (16 * MiB)))


async def upload_and_sign(server, source: Path) -> str:  # type: ignore[no-untyped-def]
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client:
        entry = await client.upload("/large.bin", source)
        signed = await client._dialect.sign_url(entry)  # the same URL the mount would use
        return signed.url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--random-reads", type=int, default=2000)
    parser.add_argument("--dialect", choices=["v4", "v3"], default="v4", help="server dialect (v4)")
    args = parser.parse_args()
    size = args.size_mib * MiB

    with environment(capacity=4 * size + (1 << 30), dialect=args.dialect) as (server, base):
        source = base / "source.bin"
        make_file(source, size)
        url = trio.run(upload_and_sign, server, source)
        source.unlink()
        seed_bulk_folder(server.data_dir, ["big"], 10_000, email=server.email)
        for i in range(20):
            seed_bulk_folder(server.data_dir, ["tree", f"d{i:02d}"], 1_000, email=server.email)

        mount = Mount(server, base / "mnt", base / "mcache", options="metadata_ttl=600")
        target = mount.path / "large.bin"

        # --- cold sequential read vs curl -----------------------------------------
        def cold_prepare() -> None:
            mount.wipe_cache()
            mount.mount()
            drop_caches()

        cold = []
        for _ in range(args.reps):
            cold_prepare()
            cold.append(timed(lambda: read_all(target)))
            mount.umount()
        cold_s = sorted(cold)[len(cold) // 2]
        curl_s = median_of(args.reps, lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True),
                           before=drop_caches)

        # --- warm re-read from the block cache vs the cache file --------------------
        mount.mount()
        read_all(target)  # fill the block cache completely
        mount.umount()
        cache_file = max((base / "mcache" / "blocks" / "data").iterdir(), key=lambda p: p.stat().st_size)
        warm = []
        direct = []
        for _ in range(args.reps):
            mount.mount()
            drop_caches()
            warm.append(timed(lambda: read_all(target)))
            mount.umount()
            drop_caches()
            direct.append(timed(lambda: read_all(cache_file)))
        warm_s, direct_s = sorted(warm)[len(warm) // 2], sorted(direct)[len(direct) // 2]

        # --- metadata: ls -l and find, cold and warm -------------------------------------
        def twice(command: list[str]) -> tuple[float, float]:
            colds, warms = [], []
            for _ in range(args.reps):
                mount.mount()
                colds.append(timed(lambda: subprocess.run(command, stdout=subprocess.DEVNULL, check=True)))
                warms.append(timed(lambda: subprocess.run(command, stdout=subprocess.DEVNULL, check=True)))
                mount.umount()
            return sorted(colds)[len(colds) // 2], sorted(warms)[len(warms) // 2]

        ls_cold, ls_warm = twice(["ls", "-l", str(mount.path / "big")])
        find_cold, find_warm = twice(["find", str(mount.path / "tree")])

        # --- random 4 KiB reads on a cold cache --------------------------------------------
        cold_prepare()
        rng = random.Random(1)
        offsets = [rng.randrange(0, size - 4096) // 4096 * 4096 for _ in range(args.random_reads)]
        fd = os.open(target, os.O_RDONLY)
        start = time.perf_counter()
        for off in offsets:
            os.pread(fd, 4096, off)
        random_s = time.perf_counter() - start
        os.close(fd)
        mount.umount()

    report(f"sequential read, {args.size_mib} MiB, cold, median of {args.reps}", [
        ("mount", f"{cold_s:7.2f} s  {rate(size, cold_s)}"),
        ("curl (same server)", f"{curl_s:7.2f} s  {rate(size, curl_s)}"),
        ("ratio mount/curl", f"{curl_s / cold_s:7.2f}   (target >= 0.8)"),
    ])
    report("warm re-read from the block cache", [
        ("mount", f"{warm_s:7.2f} s  {rate(size, warm_s)}"),
        ("cache file directly", f"{direct_s:7.2f} s  {rate(size, direct_s)}"),
        ("ratio mount/direct", f"{direct_s / warm_s:7.2f}"),
    ])
    report("metadata", [
        ("ls -l, 10,000 entries, cold", f"{ls_cold:7.2f} s"),
        ("ls -l, 10,000 entries, warm", f"{ls_warm:7.2f} s"),
        ("find, 20,000 entries, cold", f"{find_cold:7.2f} s"),
        ("find, 20,000 entries, warm", f"{find_warm:7.2f} s"),
    ])
    report("random 4 KiB reads, cold cache", [
        ("reads per second", f"{args.random_reads / random_s:7.0f}"),
    ])


if __name__ == "__main__":
    main()
