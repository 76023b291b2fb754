"""Benchmark: 1 GiB download and upload through CloudreveClient vs curl,
against the same bundled ``cloudfs server``, in one run.

    .venv/bin/python bench/client_transfer.py [--size-mib 1024] [--reps 3]

* client upload: ``CloudreveClient.upload`` (chunks streamed from the file,
  as many in flight as the storage policy allows);
* curl upload: the upload session is created through the API (not timed
  separately: it is part of both), then one curl process POSTs every chunk
  file (``--data-binary @chunk`` per URL, ``--next``, one keep-alive
  connection), chunks pre-split on disk before the clock starts;
* client download: ``CloudreveClient.stream`` over the whole file (one HTTP
  range, like curl) and ``read``-style parallel ranges (4 streams);
* curl download: ``curl -o /dev/null <signed URL>``.

Downloads go to /dev/null on both sides (the content is checked once,
outside the timings).  Prints each run, the medians and the client/curl
throughput ratios (target >= 0.9).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudfs.client.api import ClientSettings, CloudreveClient  # noqa: E402
from cloudfs.client.models import Entry  # noqa: E402
from cloudfs.client.plan import plan_chunks  # noqa: E402
from cloudfs.server.testing import start_server  # noqa: E402

MiB = 1 << 20


def make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(16 * MiB, left))
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


async def client_upload(client: CloudreveClient, path: str, src: Path, replace: Entry | None) -> tuple[float, Entry]:
    start = time.perf_counter()
    entry = await client.upload(path, src, replace=replace)
    return time.perf_counter() - start, entry


async def curl_upload(client: CloudreveClient, path: str, chunk_files: list[Path], size: int,
                      replace: Entry | None) -> float:
    dialect = client._dialect  # the benchmark drives the API directly for curl's session
    auth = await client._http.auth.headers()  # type: ignore[union-attr]
    start = time.perf_counter()
    session = await dialect.open_upload(path, size, mtime_ms=None, replace=replace)
    chunks = plan_chunks(size, session.chunk_size)
    assert len(chunks) == len(chunk_files), "chunk size differs from the pre-split files"
    argv = ["curl", "-sS"]
    for i, chunk_file in enumerate(chunk_files):
        if i:
            argv.append("--next")
        for key, value in auth.items():  # v4: Authorization, v3: Cookie
            argv += ["-H", f"{key}: {value}"]
        argv += ["-X", "POST",
                 "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{chunk_file}",
                 client._http.api_url(f"/file/upload/{session.session_id}/{i}")]
    out = await trio.to_thread.run_sync(lambda: subprocess.run(argv, capture_output=True, check=True).stdout)
    elapsed = time.perf_counter() - start
    answers = out.decode().replace("}{", "}\n{").splitlines()
    if len(answers) != len(chunks) or any(json.loads(a)["code"] != 0 for a in answers):
        raise RuntimeError(f"curl upload failed: {out[:300]!r}")
    # what finishes an upload (v3: the swap of a replacement into place) is part of it
    start = time.perf_counter()
    await dialect.complete_upload(session, replace)
    return elapsed + time.perf_counter() - start


async def client_stream(client: CloudreveClient, entry: Entry) -> float:
    start = time.perf_counter()
    async with aclosing(client.stream(entry, 0, entry.size)) as pieces:
        async for _ in pieces:
            pass
    return time.perf_counter() - start


async def client_parallel(client: CloudreveClient, entry: Entry, ways: int = 4) -> float:
    part = -(-entry.size // ways)

    async def one(off: int) -> None:
        async with aclosing(client.stream(entry, off, part)) as pieces:
            async for _ in pieces:
                pass

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(ways):
            nursery.start_soon(one, k * part)
    return time.perf_counter() - start


async def curl_download(client: CloudreveClient, entry: Entry) -> float:
    url = await client._downloads.urls.get(entry)
    start = time.perf_counter()
    await trio.to_thread.run_sync(
        lambda: subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", url], check=True))
    return time.perf_counter() - start


def mibps(size: int, seconds: float) -> float:
    return size / MiB / seconds


def proc_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` (0 if unknown)."""
    if pid is None:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(fn, server_pid: int | None) -> tuple[float, float, float]:
    """(wall s, this process's CPU s, the server's CPU s) of one run; a curl
    run's own CPU is in a child process and not counted."""
    # start each run with no dirty page cache from the previous one: the
    # server writing back a GiB would slow whichever run comes next
    await trio.to_thread.run_sync(os.sync)
    cpu, srv = time.process_time(), proc_cpu(server_pid)
    wall = await fn()
    return wall, time.process_time() - cpu, proc_cpu(server_pid) - srv


async def main(args: argparse.Namespace) -> None:
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="cloudfs-bench-", dir=args.tmp))
    src = work / "source.bin"
    print(f"preparing {args.size_mib} MiB source in {work} ...", flush=True)
    digest = make_source(src, size)
    kwargs = {"capacity": 64 * size, "faults": False, "dialect": args.dialect}
    if args.chunk_mib:
        kwargs["chunk_size"] = args.chunk_mib * MiB
    with start_server(work / "server", **kwargs) as server:
        settings = ClientSettings(deadline_s=60.0, request_timeout_s=60.0)
        async with await CloudreveClient.connect(server.url, email=server.email, password=server.password,
                                                 settings=settings) as client:
            # pre-split curl's chunk files with the server's chunk size
            probe = await client._dialect.open_upload("/bench-probe", size, mtime_ms=None, replace=None)
            await client._dialect.cancel_upload(probe)
            chunk_files = []
            with open(src, "rb") as f:
                for chunk in plan_chunks(size, probe.chunk_size):
                    p = work / f"chunk-{chunk.index:05d}"
                    p.write_bytes(f.read(chunk.length))
                    chunk_files.append(p)
            print(f"server chunk size {probe.chunk_size / MiB:g} MiB ({len(chunk_files)} chunks), "
                  f"chunk concurrency {probe.concurrency or 1}", flush=True)

            names = ("client up", "curl up", "client down", "client down x4", "curl down")
            times: dict[str, list[float]] = {k: [] for k in names}
            cpus: dict[str, list[float]] = {k: [] for k in names}
            server_cpus: dict[str, list[float]] = {k: [] for k in names}
            mine: Entry | None = None
            theirs: Entry | None = None
            pid = server.pid

            async def up_client() -> float:
                nonlocal mine
                t, mine = await client_upload(client, "/bench-client.bin", src, mine)
                return t

            async def up_curl() -> float:
                nonlocal theirs
                t = await curl_upload(client, "/bench-curl.bin", chunk_files, size, theirs)
                theirs = await client.stat("/bench-curl.bin")
                return t

            for rep in range(args.reps):
                runs = (("client up", up_client), ("curl up", up_curl),
                        ("client down", lambda: client_stream(client, mine)),
                        ("client down x4", lambda: client_parallel(client, mine)),
                        ("curl down", lambda: curl_download(client, mine)))
                for label, fn in runs:
                    wall, cpu, srv_cpu = await measured(fn, pid)
                    times[label].append(wall)
                    cpus[label].append(cpu)
                    server_cpus[label].append(srv_cpu)
                print(f"rep {rep + 1}: " + ", ".join(f"{k} {mibps(size, v[-1]):.0f} MiB/s" for k, v in times.items()),
                      flush=True)
            # content check, outside the timings
            for entry in (mine, theirs):
                assert entry is not None
                h = hashlib.sha256()
                async with aclosing(client.stream(entry, 0, entry.size)) as pieces:
                    async for piece in pieces:
                        h.update(piece)
                assert h.hexdigest() == digest, f"{entry.path}: content differs"
    med = {k: statistics.median(v) for k, v in times.items()}
    gib = size / (1 << 30)
    print(f"\n{args.size_mib} MiB, {args.reps} repetitions, medians:")
    print(f"  {'':15s} {'wall':>7s}    {'MiB/s':>7s}   client CPU s/GiB   server CPU s/GiB")
    for k, v in med.items():
        client_cpu = f"{statistics.median(cpus[k]) / gib:6.2f}" if k.startswith("client") else "  (curl)"
        print(f"  {k:15s} {v:7.2f} s  {mibps(size, v):7.0f}   {client_cpu:>16s}   "
              f"{statistics.median(server_cpus[k]) / gib:16.2f}")
    print(f"  upload ratio   client/curl = {med['curl up'] / med['client up']:.2f}")
    print(f"  download ratio client/curl = {med['curl down'] / med['client down']:.2f} "
          f"(parallel ranges: {med['curl down'] / med['client down x4']:.2f})")
    print("  content verified (sha256) on both uploads")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk-mib", type=int, default=0, help="server chunk size (default: the server's)")
    parser.add_argument("--tmp", default=None, help="where to put the source file and server data")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--dialect", choices=["v4", "v3"], default="v4", help="server dialect (v4)")
    trio.run(main, parser.parse_args())
