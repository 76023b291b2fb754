"""Benchmark: the read side of a real mount against baselines, in one run.

    .venv/bin/python bench/mount_read.py [--size-mib 1024] [--reps 3] [--dialect v4]

Every cloudfs figure has its baseline measured in the same run, from the same
server, and the table gives medians and their ratio:

* cold sequential read of one large file (empty block cache, kernel caches
  dropped) vs ``curl`` of the same file's signed URL: target >= 0.8;
* warm re-read (from the block cache, after a remount) vs reading the cache
  file directly: target >= 0.8;
* four processes each reading a different 256 MiB file at once vs four
  parallel curls: aggregate target >= 0.8;
* two processes reading the same file at once: bytes downloaded / file size
  (1.00 = one fetch of each range);
* random 4 KiB preads on a cold cache: reads per second, p50 and p99;
* the mount process's CPU seconds per GiB of a cold read, and its peak RSS
  while reading a 2 GiB file (target < 200 MiB);
* ``ls -l`` of 10,000 entries against the paged listing it needs, and
  ``find`` over 20,000 (``mount_list.py``).

Run as root (drops the kernel's caches between runs).  Used by
``bench/all.py`` (``make bench``) for the one table of every benchmark.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import time
from pathlib import Path

import trio

from mount_list import listing_rows, seed as seed_listed_folders
from harness import (MiB, Mount, Row, cpu_seconds, drop_caches, environment, mount_pid, mount_status, peak_rss_mib,
                     script_main, timed)

from cloudfs.client.api import CloudreveClient

GiB = 1024 * MiB
PARALLEL = 4
PARALLEL_MIB = 256


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


async def upload_and_sign(server, files: dict[str, Path]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Upload each file; the signed download URL of each (the one the mount would use)."""
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client:
        urls = {}
        for remote, source in files.items():
            entry = await client.upload(remote, source)
            urls[remote] = (await client._dialect.sign_url(entry)).url
        return urls


def upload_random_files(server, base: Path, sizes: dict[str, int]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Upload a file of random bytes for each remote path and size; the signed download URL of each."""
    local = {remote: base / remote.strip("/") for remote in sizes}
    for remote, length in sizes.items():
        make_file(local[remote], length)
    urls = trio.run(upload_and_sign, server, local)
    for path in local.values():
        path.unlink()
    return urls


def all_at_once(commands: list[list[str]]) -> float:
    """Seconds until every one of ``commands``, started together, is done."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"{p.args} failed")
    return time.perf_counter() - start


def random_reads(path: Path, size: int, count: int, seed: int = 1) -> list[float]:
    """Seconds of each of ``count`` 4 KiB preads at random aligned offsets of ``path``, sorted."""
    rng = random.Random(seed)
    offsets = [rng.randrange(0, size - 4096) // 4096 * 4096 for _ in range(count)]
    latencies = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offsets:
            start = time.perf_counter()
            os.pread(fd, 4096, off)
            latencies.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return sorted(latencies)


def curl(url: str) -> list[str]:
    return ["curl", "-sf", "-o", "/dev/null", url]


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    size = args.size_mib * MiB
    rss_size = args.rss_mib * MiB
    part = PARALLEL_MIB * MiB
    rows: list[Row] = []
    with environment(capacity=2 * (size + rss_size + PARALLEL * part) + GiB, dialect=dialect) as (server, base):
        sources = {"/large.bin": size, "/rss.bin": rss_size, **{f"/p{i}.bin": part for i in range(PARALLEL)}}
        urls = upload_random_files(server, base, sources)
        seed_listed_folders(server)
        mount = Mount(server, base / "mnt", base / "mcache", options="metadata_ttl=600")

        def cold_mount() -> int:
            mount.wipe_cache()
            mount.mount()
            drop_caches()
            return mount_pid(mount.path)

        # --- cold sequential read vs curl, and the mount's CPU per GiB ------------------
        # (each curl right after its cold read: a machine whose load changes during the run changes both)
        cold, cpu, curl_s = [], [], []
        for _ in range(args.reps):
            pid = cold_mount()
            before = cpu_seconds(pid)
            cold.append(timed(lambda: read_all(mount.path / "large.bin")))
            cpu.append((cpu_seconds(pid) - before) / (size / GiB))
            mount.umount()
            drop_caches()
            curl_s.append(timed(lambda: subprocess.run(curl(urls["/large.bin"]), check=True)))
        cold_s, curl_med = statistics.median(cold), statistics.median(curl_s)
        rows.append(Row(f"cold sequential read, {args.size_mib} MiB", f"{size / MiB / cold_s:6.0f} MiB/s",
                        f"curl {size / MiB / curl_med:6.0f} MiB/s", curl_med / cold_s, ">= 0.8"))
        rows.append(Row("  mount CPU per GiB read (cold)", f"{statistics.median(cpu):6.2f} s"))

        # --- warm re-read from the block cache vs the cache file ----------------------------
        mount.mount()
        read_all(mount.path / "large.bin")  # fill the block cache completely
        mount.umount()
        cache_file = max((base / "mcache" / "blocks" / "data").iterdir(), key=lambda p: p.stat().st_size)
        warm, direct = [], []
        for _ in range(args.reps):
            mount.mount()
            drop_caches()
            warm.append(timed(lambda: read_all(mount.path / "large.bin")))
            mount.umount()
            drop_caches()
            direct.append(timed(lambda: read_all(cache_file)))
        warm_s, direct_s = statistics.median(warm), statistics.median(direct)
        rows.append(Row("warm re-read (block cache, remounted)", f"{size / MiB / warm_s:6.0f} MiB/s",
                        f"cache file {size / MiB / direct_s:6.0f} MiB/s", direct_s / warm_s, ">= 0.8"))

        # --- four readers of four files at once vs four curls --------------------------------
        names = [f"p{i}.bin" for i in range(PARALLEL)]
        parallel, curls = [], []
        for _ in range(args.reps):
            cold_mount()
            parallel.append(all_at_once([["cat", str(mount.path / n)] for n in names]))
            mount.umount()
            drop_caches()
            curls.append(all_at_once([curl(urls["/" + n]) for n in names]))
        par_s, curls_s = statistics.median(parallel), statistics.median(curls)
        total = PARALLEL * part / MiB
        rows.append(Row(f"{PARALLEL} readers, {PARALLEL} x {PARALLEL_MIB} MiB at once", f"{total / par_s:6.0f} MiB/s",
                        f"{PARALLEL} curls {total / curls_s:6.0f} MiB/s", curls_s / par_s, ">= 0.8"))

        # --- two readers of one file: each range fetched once --------------------------------
        shared = []
        for _ in range(args.reps):
            cold_mount()
            all_at_once([["cat", str(mount.path / "large.bin")]] * 2)
            shared.append(mount_status(mount.path)["downloaded"] / size)
            mount.umount()
        rows.append(Row("2 readers of one file: bytes downloaded / size", f"{statistics.median(shared):6.2f}",
                        "", None, "1.00"))

        # --- random 4 KiB reads on a cold cache ----------------------------------------------
        cold_mount()
        latencies = random_reads(mount.path / "large.bin", size, args.random_reads)
        mount.umount()
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        rows.append(Row("random 4 KiB preads, cold cache", f"{len(latencies) / sum(latencies):6.0f} /s",
                        "", None, ">= 468 /s"))
        rows.append(Row("  latency p50 / p99", f"{p50 * 1000:.1f} / {p99 * 1000:.1f} ms"))

        # --- metadata: ls -l (against the paged listing it needs) and find, cold and warm ---------
        rows += listing_rows(server, mount, args.reps)

        # --- peak RSS while reading a 2 GiB file ------------------------------------------------
        pid = cold_mount()
        read_all(mount.path / "rss.bin")
        rss = peak_rss_mib(pid)
        mount.umount()
        rows.append(Row(f"mount peak RSS reading {args.rss_mib} MiB", f"{rss:6.0f} MiB", "", None, "< 200 MiB"))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rss-mib", type=int, default=2048)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--random-reads", type=int, default=2000)


def main() -> None:
    script_main("read side", add_arguments, run)


if __name__ == "__main__":
    main()
