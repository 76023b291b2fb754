#!/usr/bin/env python3
"""Benchmark: the bundled server's CPU per small ranged GET, one tree against another.

    .venv/bin/python bench/server_ranged.py [--tree new=. --tree old=/tmp/base] [--dialect v4]
        [--requests 4000] [--range 4096] [--spy flame.svg]

Each tree gets a server of its own (``python -m cloudfs.server`` importing
that tree) holding one file of random bytes (uploaded by this tree's client,
so its blob is in the page cache).  Then, in rounds that alternate the
trees, one keep-alive pycurl handle per server asks for ``--range`` bytes at
random aligned offsets, as the mount's downloader does.  Per tree it prints
the server's CPU per request (user + system of the whole process, median of
the rounds) and the requests per second the client saw.  ``--spy`` records
the first tree's server with py-spy during its rounds (an SVG flame graph;
``--spy-format raw`` for collapsed stacks).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from io import BytesIO
from pathlib import Path

import pycurl

from harness import MiB, cpu_seconds, environment, start_tree_server
from mount_read import upload_random_files


def ranged_gets(handle: pycurl.Curl, url: str, size: int, length: int, count: int, rng: random.Random) -> None:
    """``count`` GETs of ``length`` bytes at random aligned offsets over one kept-alive connection."""
    handle.setopt(pycurl.URL, url)
    for _ in range(count):
        start = rng.randrange(0, size - length) // length * length
        sink = BytesIO()
        handle.setopt(pycurl.HTTPHEADER, [f"Range: bytes={start}-{start + length - 1}", "Accept-Encoding: identity"])
        handle.setopt(pycurl.WRITEDATA, sink)
        handle.perform()
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        if status != 206 or len(sink.getvalue()) != length:
            raise RuntimeError(f"ranged GET answered {status} with {len(sink.getvalue())} bytes")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR (default: this tree)")
    parser.add_argument("--dialect", choices=["v4", "v3", "koodrive"], default="v4")
    parser.add_argument("--requests", type=int, default=4000, help="ranged GETs per tree")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--range", type=int, default=4096, help="bytes per request")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--spy", help="py-spy record the first tree's server into this file")
    parser.add_argument("--spy-args", default="", help="more py-spy record options, e.g. --gil")
    parser.add_argument("--spy-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"])
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(Path(__file__).resolve().parents[1])}
    size = args.size_mib * MiB
    names = list(trees)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    rate: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(7)
    with environment(capacity=2 * size, dialect=args.dialect) as (first, base), ExitStack() as stack:
        servers, urls = {}, {}
        for n in names:
            srv = start_tree_server(str(Path(trees[n]).resolve()), base / f"server-{n}", capacity=2 * size,
                                    dialect=args.dialect)
            stack.callback(srv.stop)
            servers[n] = srv
            urls[n] = upload_random_files(srv, base, {f"/{n}.bin": size})[f"/{n}.bin"]
        handles = {n: pycurl.Curl() for n in names}
        for n in names:  # warm-up: connection, lazy imports
            ranged_gets(handles[n], urls[n], size, args.range, 50, rng)
        spy = None
        if args.spy:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(servers[names[0]].pid), "--rate", "500",
                                    "--format", args.spy_format, "--output", args.spy, "--nonblocking", *args.spy_args.split()],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        per_round = max(args.requests // args.rounds, 1)
        for r in range(args.rounds):
            for n in (names if r % 2 else names[::-1]):
                pid = servers[n].pid
                assert pid is not None
                before, start = cpu_seconds(pid), time.perf_counter()
                ranged_gets(handles[n], urls[n], size, args.range, per_round, rng)
                wall = time.perf_counter() - start
                cpu[n].append((cpu_seconds(pid) - before) / per_round * 1000)
                rate[n].append(per_round / wall)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        for h in handles.values():
            h.close()
    print(f"\n== ranged GETs of {args.range} bytes, {args.dialect}, {per_round * args.rounds} per tree")
    for n in names:
        print(f"  {n:>8}: server cpu {statistics.median(cpu[n]):.3f} ms/request "
              f"(rounds {min(cpu[n]):.3f}-{max(cpu[n]):.3f})  {statistics.median(rate[n]):6.0f} requests/s")
    if len(names) == 2:
        a, b = names
        print(f"  cpu ratio {a}/{b}: {statistics.median(cpu[a]) / statistics.median(cpu[b]):.2f}")


if __name__ == "__main__":
    main()
