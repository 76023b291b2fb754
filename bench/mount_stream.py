"""Benchmark: where the time of ``cp big mnt/ && cloudfs umount`` goes, in one run.

    .venv/bin/python bench/mount_stream.py [--size-mib 256] [--reps 3] [--dialect v4]

Each rep measures, one after the other on the same server:

* ``direct``: a chunked upload of the file with the client (the baseline of
  bench/mount_write.py), with this process's and the server's CPU seconds;
* ``cp``: ``cp`` of the file into a fresh mount, timed until cp returns
  (the unmount after it is not timed);
* ``cp+umount``: ``cp`` then ``cloudfs umount``, timed until umount returns
  (the file is on the server), with CPU seconds of cp, the mount and the server.

Then one more ``cp+umount`` with the mount at debug level gives a timeline:
when each chunk was on the wire, when cp returned, when umount started and
returned.  Prints medians and each pair's ratio ``direct / cp+umount`` (target >= 0.8).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import trio

from harness import (CLOUDFS, MiB, Mount, Row, cpu_seconds, drop_caches, environment, importing_tree, mount_pid,
                     script_main)
from mount_write import client_upload, make_file


@dataclass
class CpuWatch:
    """The last CPU seconds seen of a process that may exit meanwhile."""

    pid: int
    last: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.first = cpu_seconds(self.pid)
        self.last = self.first
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.last = cpu_seconds(self.pid)
            except (OSError, IndexError):
                return

    def used(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.last - self.first


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    cp: float
    total: float
    cp_cpu: float
    mount_cpu: float
    server_cpu: float
    #: cp returned, umount started, umount returned (wall clock)
    marks: dict[str, float]


class VerboseMount(Mount):
    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        cmd = [*CLOUDFS, "mount", self.server.url, str(self.path), "--user", self.server.email,
               "--cache-dir", str(self.cache_dir), "-o", self.options, "-vv"]
        subprocess.run(cmd, env=dict(os.environ, CLOUDFS_PASSWORD=self.server.password), check=True)


def cp_and_umount(mount: Mount, source: Path, name: str, server_pid: int, *, umount: bool = True) -> Timing:
    mount.wipe_cache()
    mount.mount()
    pid = mount_pid(mount.path)
    drop_caches()
    mount_watch, server_watch = CpuWatch(pid), CpuWatch(server_pid)
    marks = {"start": time.time()}
    before = children_cpu()
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(mount.path / name)], check=True)
    cp_s = time.perf_counter() - start
    cp_cpu = children_cpu() - before
    marks["cp returned"] = marks["umount started"] = time.time()
    if umount:
        mount.umount()
    total = time.perf_counter() - start
    marks["umount returned"] = time.time()
    timing = Timing(cp_s, total, cp_cpu, mount_watch.used(), server_watch.used(), marks)
    if not umount:
        mount.umount()
    mount.mount()
    os.unlink(mount.path / name)
    mount.umount()
    return timing


def direct(server, source: Path, target: str, server_pid: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    drop_caches()
    server_watch = CpuWatch(server_pid)
    before = time.process_time()
    elapsed = trio.run(client_upload, server, source, target)
    return elapsed, time.process_time() - before, server_watch.used()


LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+: (.*)$")


def timeline(log_file: Path, marks: dict[str, float]) -> list[str]:
    """The chunk and upload lines of the mount's log after ``marks['start']``,
    with the marks, in seconds since the cp started."""
    events: list[tuple[float, str]] = [(t, what) for what, t in marks.items()]
    for line in log_file.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        text = m.group(2)
        if when < marks["start"] - 1:
            continue
        sent = re.match(r"chunk (\d+) \((\d+) bytes\) of .* sent in ([\d.]+) s", text)
        if sent:
            took = float(sent.group(3))
            events.append((when - took, f"chunk {sent.group(1)} starts ({int(sent.group(2)) / MiB:.1f} MiB)"))
            events.append((when, f"chunk {sent.group(1)} sent ({took:.2f} s)"))
        elif re.match(r"(uploading|uploaded|unmounted|waiting for|received)", text):
            events.append((when, text))
    events.sort()
    return [f"  {t - marks['start']:7.3f}  {what}" for t, what in events]


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    size = args.size_mib * MiB
    with environment(capacity=4 * size + (1 << 30), dialect=dialect) as (server, base):
        server_pid = server._proc.pid  # type: ignore[union-attr]
        source = base / "source.bin"
        make_file(source, size)
        mount = Mount(server, base / "mnt", base / "mcache", options="delete=permanent")
        rows: list[tuple[float, float, float, float, float, Timing, Timing]] = []
        before: list[tuple[float, Timing]] = []
        for rep in range(args.reps):
            d_s, d_cpu, d_server = direct(server, source, f"/direct-{rep}.bin", server_pid)
            if args.before:
                with importing_tree(args.before):
                    old = cp_and_umount(mount, source, f"before-{rep}.bin", server_pid)
                before.append((d_s, old))
                print(f"rep {rep}: before ({args.before}): cp+umount {old.total:.2f} s (cp {old.cp:.2f}; cpu: cp "
                      f"{old.cp_cpu:.2f}, mount {old.mount_cpu:.2f}, server {old.server_cpu:.2f}); "
                      f"ratio {d_s / old.total:.2f}", flush=True)
            alone = cp_and_umount(mount, source, f"alone-{rep}.bin", server_pid, umount=False)
            both = cp_and_umount(mount, source, f"copied-{rep}.bin", server_pid)
            rows.append((d_s, d_cpu, d_server, alone.cp, both.total, alone, both))
            print(f"rep {rep}: direct {d_s:.2f} s (client cpu {d_cpu:.2f}, server cpu {d_server:.2f}); "
                  f"cp alone {alone.cp:.2f} s; cp+umount {both.total:.2f} s (cp {both.cp:.2f}; cpu: cp "
                  f"{both.cp_cpu:.2f}, mount {both.mount_cpu:.2f}, server {both.server_cpu:.2f}); "
                  f"ratio {d_s / both.total:.2f}", flush=True)

        # one more, at debug level, for the timeline (a background mount logs to its own file)
        from cloudfs.cli.logs import mount_log_file

        debug = VerboseMount(server, base / "mnt", base / "mcache", options="delete=permanent")
        log_file = mount_log_file(debug.path)
        traced = cp_and_umount(debug, source, "traced.bin", server_pid)
        # and the direct upload's chunks, logged by this process
        direct_log = base / "direct.log"
        handler = logging.FileHandler(direct_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        chunk_log = logging.getLogger("cloudfs.client.upload")
        chunk_log.addHandler(handler)
        chunk_log.setLevel(logging.DEBUG)
        marks = {"start": time.time()}
        d_traced = direct(server, source, "/direct-traced.bin", server_pid)[0]
        marks["upload returned"] = time.time()
        chunk_log.removeHandler(handler)
        handler.close()
        print(f"\ntimeline of one direct upload ({d_traced:.2f} s):")
        print("\n".join(timeline(direct_log, marks)))
        print(f"\ntimeline of one cp+umount at debug level ({traced.total:.2f} s; cp {traced.cp:.2f} s):")
        print("\n".join(timeline(log_file, traced.marks)))

    med = statistics.median
    ratio = med(r[0] / r[4] for r in rows)
    per_gib = 1 / (size / (1 << 30))
    before_rows = [
        Row(f"cp + umount, {args.before}", f"{med(t.total for _, t in before):6.2f} s", "direct",
            med(d / t.total for d, t in before), ">= 0.8"),
        Row("  cp / mount / server CPU per GiB",
            f"{med(t.cp_cpu for _, t in before) * per_gib:5.2f} / {med(t.mount_cpu for _, t in before) * per_gib:5.2f}"
            f" / {med(t.server_cpu for _, t in before) * per_gib:5.2f} s", "", None, ""),
        Row("  mount CPU, this tree / before", "", "", med(r[6].mount_cpu / t.mount_cpu for r, (_, t)
                                                             in zip(rows, before)), ""),
    ] if before else []
    return before_rows + [
        Row("direct chunked upload", f"{med(r[0] for r in rows):6.2f} s", "", None, ""),
        Row("  client / server CPU per GiB", f"{med(r[1] for r in rows) * per_gib:5.2f} / "
            f"{med(r[2] for r in rows) * per_gib:5.2f} s", "", None, ""),
        Row("cp alone (until cp returns)", f"{med(r[3] for r in rows):6.2f} s", "", None, ""),
        Row("cp + umount (until on the server)", f"{med(r[4] for r in rows):6.2f} s", "direct", ratio, ">= 0.8"),
        Row("  cp / mount / server CPU per GiB",
            f"{med(r[6].cp_cpu for r in rows) * per_gib:5.2f} / {med(r[6].mount_cpu for r in rows) * per_gib:5.2f}"
            f" / {med(r[6].server_cpu for r in rows) * per_gib:5.2f} s", "", None, ""),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", metavar="TREE",
                        help="also time cp+umount with the mount of another checkout, in the same pairs")


def main() -> None:
    script_main("cp + umount against a direct upload", add_arguments, run)


if __name__ == "__main__":
    main()
