"""A/B of cold random 4 KiB preads: two code trees mounted at once against
one server, read by read in turn.

    .venv/bin/python bench/random_ab.py --tree new=. --tree old=/tmp/base [--reads 3000] [--dialect v4]

On a shared machine the load changes faster than a run of thousands of
reads takes, so runs of A then B (bench/read_ab.py) can land on different
loads.  Here both mounts are up together and every offset is read from A
and from B back to back (who goes first alternates): each side meets the
same load.  Each tree reads a file of its own (the server's page cache
would otherwise favour the second reader), swapped halfway, and each half
starts from a fresh mount and an empty cache.  Prints reads/s, p50, p99
and the mount's CPU per read.  Run as root.

Both mounts talk to one server (of the tree running this script) unless
``--own-servers``: then each tree's mount talks to a server of that tree
(the whole stack against the whole stack), and the server's CPU per read is
printed too.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from harness import MiB, cpu_seconds, drop_caches, environment, mount_pid, start_tree_server
from mount_read import upload_random_files
from read_ab import TreeMount


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", required=True, help="NAME=DIR (two of them)")
    parser.add_argument("--reads", type=int, default=3000, help="preads per tree")
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--dialect", choices=["v4", "v3", "koodrive"], default="v4")
    parser.add_argument("--own-servers", action="store_true", help="each tree's mount uses a server of that tree")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    if len(trees) != 2:
        parser.error("give two trees")
    size = args.size_mib * MiB
    names = list(trees)
    latencies: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    server_cpu: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(5)
    with environment(capacity=4 * size, dialect=args.dialect) as (shared, base), ExitStack() as stack:
        servers = {n: shared for n in names}
        if args.own_servers:
            for n in names:
                servers[n] = start_tree_server(str(Path(trees[n]).resolve()), base / f"server-{n}",
                                               capacity=4 * size, dialect=args.dialect)
                stack.callback(servers[n].stop)
        for server in {id(s): s for s in servers.values()}.values():
            upload_random_files(server, base, {"/a.bin": size, "/b.bin": size})
        mounts = {}
        for name, tree in trees.items():
            mounts[name] = TreeMount(servers[name], base / f"mnt-{name}", base / f"cache-{name}",
                                     options="metadata_ttl=600")
            mounts[name].tree = str(Path(tree).resolve())
        for files in (["a.bin", "b.bin"], ["b.bin", "a.bin"]):
            for m in mounts.values():
                m.wipe_cache()
                m.mount()
            drop_caches()
            pids = {n: mount_pid(mounts[n].path) for n in names}
            fds = {n: os.open(mounts[n].path / f, os.O_RDONLY) for n, f in zip(names, files)}
            before = {n: cpu_seconds(pids[n]) for n in names}
            server_before = {n: cpu_seconds(servers[n].pid) for n in names}
            half = args.reads // 2
            for i in range(half):
                off = rng.randrange(0, size - 4096) // 4096 * 4096
                for n in (names if i % 2 else names[::-1]):
                    start = time.perf_counter()
                    os.pread(fds[n], 4096, off)
                    latencies[n].append(time.perf_counter() - start)
            for n in names:
                cpu[n].append((cpu_seconds(pids[n]) - before[n]) / half * 1000)
                server_cpu[n].append((cpu_seconds(servers[n].pid) - server_before[n]) / half * 1000)
                os.close(fds[n])
            for m in mounts.values():
                m.umount()
    print(f"\n== cold random 4 KiB preads, read by read in turn, Cloudreve {args.dialect}"
          + (", a server per tree" if args.own_servers else ""))
    for n in names:
        lat = sorted(latencies[n])
        line = (f"  {n:>8}: {len(lat) / sum(lat):5.0f} /s  p50 {lat[len(lat) // 2] * 1000:.2f} ms  "
                f"p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms  mount cpu {statistics.mean(cpu[n]):.2f} ms/read")
        if args.own_servers:
            line += f"  server cpu {statistics.mean(server_cpu[n]):.2f} ms/read"
        print(line)


if __name__ == "__main__":
    main()
