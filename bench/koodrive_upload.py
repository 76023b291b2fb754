"""Benchmark: a KooDrive upload in sequential parts vs parallel parts with
``hashCtx``, through ``CloudreveClient.upload`` against the bundled KooDrive
emulator, in one run (alternating, so both see the same machine).

    .venv/bin/python bench/koodrive_upload.py [--size-mib 256] [--reps 3]

* sequential: ``upload_parallelism=1``: the server's plan (5 MiB parts), one
  part at a time;
* parallel: the default (4): our own plan of 8 MiB parts with each part's
  SHA-256 state, up to 4 parts in flight;
* parallel, hashed: the same with the SHA-256 and states handed in (as a
  mount hands in those of a file hashed while it was written: computed
  before the clock starts), so the upload does not read the file to hash it.

``--part-latency S`` delays every part PUT by S seconds at the server (a
far object store: each request waits a round trip or more), where parallel
parts pay; without it the machine's CPU is the limit of both.  Both hash the
file before ``files/create`` (read back: no caller's hash), but the last.
One byte of the source changes before each upload, so the server never
answers ``rapidUpload`` (it knows every content uploaded before).  Prints
each run, the medians, the client's and the server's CPU seconds and the
parallel/sequential time ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudfs.client.api import ClientSettings, CloudreveClient  # noqa: E402
from cloudfs.client.sha256state import hash_file  # noqa: E402
from cloudfs.server.testing import start_server  # noqa: E402

MiB = 1 << 20


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> None:
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="cloudfs-bench-kd-", dir=args.tmp))
    src = work / "source.bin"
    with open(src, "wb") as fp:
        for _ in range(0, size, 16 * MiB):
            fp.write(os.urandom(min(16 * MiB, size - fp.tell())))
    base = ClientSettings(deadline_s=60.0, request_timeout_s=60.0)
    modes = {"sequential": dataclasses.replace(base, upload_parallelism=1), "parallel": base,
             "parallel, hashed": base}
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    server_cpus: dict[str, list[float]] = {m: [] for m in modes}
    with start_server(work / "server", capacity=16 * size, faults=args.part_latency > 0,
                      dialect="koodrive") as server:
        if args.part_latency > 0:
            server.faults.set(latency_s=args.part_latency, path_regex="^/obs/upload/")
        clients = {m: await CloudreveClient.connect(server.url, email=server.email, password=server.password,
                                                    settings=s) for m, s in modes.items()}  # one each
        try:
            n = 0
            for rep in range(args.reps):
                for mode, client in clients.items():
                    n += 1
                    fd = os.open(src, os.O_WRONLY)
                    os.pwrite(fd, n.to_bytes(4, "big"), 0)  # new content: no rapidUpload
                    os.close(fd)
                    hashed = None
                    if mode.endswith("hashed"):
                        fd = os.open(src, os.O_RDONLY)
                        hashed = hash_file(fd, size)
                        os.close(fd)
                    await trio.to_thread.run_sync(os.sync)
                    cpu, srv = time.process_time(), proc_cpu(server.pid)
                    start = time.perf_counter()
                    entry = await client.upload(f"/bench-{n}.bin", src, hashed=hashed)
                    wall = time.perf_counter() - start
                    times[mode].append(wall)
                    cpus[mode].append(time.process_time() - cpu)
                    server_cpus[mode].append(proc_cpu(server.pid) - srv)
                    assert entry.size == size
                    await client.delete([entry.path], permanent=True)
                    print(f"rep {rep + 1} {mode:16s} {wall:6.2f} s  {size / MiB / wall:7.1f} MiB/s  "
                          f"client cpu {cpus[mode][-1]:.2f} s  server cpu {server_cpus[mode][-1]:.2f} s", flush=True)
        finally:
            for client in clients.values():
                await client.aclose()
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"\n{args.size_mib} MiB upload to the KooDrive emulator (part latency {args.part_latency:g} s), "
          f"medians of {args.reps}:")
    for m in modes:
        print(f"  {m:16s} {med[m]:6.2f} s  {size / MiB / med[m]:7.1f} MiB/s  client cpu "
              f"{statistics.median(cpus[m]):.2f} s  server cpu {statistics.median(server_cpus[m]):.2f} s")
    print(f"  parallel / sequential time: {med['parallel'] / med['sequential']:.2f}; "
          f"hashed / read back: {med['parallel, hashed'] / med['parallel']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--part-latency", type=float, default=0.0, help="seconds added to each part PUT")
    parser.add_argument("--tmp", default=None, help="where the source and server data go")
    trio.run(main, parser.parse_args())
