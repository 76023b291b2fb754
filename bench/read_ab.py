"""A/B of the read path: two code trees mounted in turn against one server.

    .venv/bin/python bench/read_ab.py --tree new=. --tree old=/tmp/base [--size-mib 512] [--reps 3]

Each tree is a directory holding a ``cloudfs`` package; its mount runs with
``PYTHONPATH`` set to it.  The runs alternate (old, new, curl, old, new,
curl...) so a machine that slows down during the call slows every side
alike; the table gives, per tree, the medians of: cold sequential read
(MiB/s, ratio to curl of the same run), the mount's CPU seconds per GiB read
cold, four readers of four files at once (ratio to four curls) and a warm
re-read after a remount (ratio to reading the cache file), with the
mount's CPU seconds per GiB of each; ``--random-reads N`` adds random 4 KiB
preads on a cold cache (rate, p50/p99 latency, mount CPU per read).  Run as
root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from harness import MiB, Mount, cpu_seconds, drop_caches, environment, importing_tree, mount_pid, timed
from mount_read import PARALLEL, all_at_once, curl, random_reads, read_all, upload_random_files

GiB = 1024 * MiB


def child_run(command: list[str]) -> tuple[float, float]:
    """Run ``command`` to its end: (seconds, its CPU seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (the event loop's)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeMount(Mount):
    """A mount whose process imports cloudfs from ``tree``."""

    tree: str = ""

    def mount(self) -> None:
        with importing_tree(self.tree):
            super().mount()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", required=True, help="NAME=DIR")
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--part-mib", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dialect", choices=["v4", "v3"], default="v4")
    parser.add_argument("--skip", nargs="*", default=[], choices=["cold", "parallel", "warm"])
    parser.add_argument("--random-reads", type=int, default=0,
                        help="also this many random 4 KiB preads on a cold cache (rate, p50, p99)")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    size, part = args.size_mib * MiB, args.part_mib * MiB
    results: dict[str, dict[str, list[float]]] = {n: {} for n in [*trees, "curl"]}

    def note(name: str, key: str, value: float) -> None:
        results[name].setdefault(key, []).append(value)

    with environment(capacity=2 * (size + PARALLEL * part) + GiB, dialect=args.dialect) as (server, base):
        sources = {"/large.bin": size, **{f"/p{i}.bin": part for i in range(PARALLEL)}}
        urls = upload_random_files(server, base, sources)
        mounts = {}
        for name, tree in trees.items():
            m = TreeMount(server, base / f"mnt-{name}", base / f"cache-{name}", options="metadata_ttl=600")
            m.tree = str(Path(tree).resolve())
            mounts[name] = m
        names = [f"p{i}.bin" for i in range(PARALLEL)]
        for rep in range(args.reps):
            for name, m in mounts.items():
                if args.random_reads:
                    m.wipe_cache()
                    m.mount()
                    drop_caches()
                    pid = mount_pid(m.path)
                    before, server_before = cpu_seconds(pid), cpu_seconds(server.pid)
                    latencies = random_reads(m.path / "large.bin", size, args.random_reads, seed=rep)
                    note(name, "rand_cpu", (cpu_seconds(pid) - before) / len(latencies) * 1000)
                    # the bundled server's share of each read's latency (a Python server: most of it)
                    note(name, "rand_srv", (cpu_seconds(server.pid) - server_before) / len(latencies) * 1000)
                    note(name, "rand", len(latencies) / sum(latencies))
                    note(name, "p50", latencies[len(latencies) // 2] * 1000)
                    note(name, "p99", latencies[int(len(latencies) * 0.99)] * 1000)
                    m.umount()
                if "cold" in args.skip:
                    continue
                m.wipe_cache()
                m.mount()
                drop_caches()
                pid = mount_pid(m.path)
                before, server_before, main_before = cpu_seconds(pid), cpu_seconds(server.pid), thread_cpu(pid)
                seconds, reader = child_run(["dd", f"if={m.path / 'large.bin'}", "of=/dev/null", "bs=1M"])
                note(name, "cold", size / MiB / seconds)
                note(name, "reader", reader / (size / GiB))
                note(name, "cpu", (cpu_seconds(pid) - before) / (size / GiB))
                note(name, "main", (thread_cpu(pid) - main_before) / (size / GiB))
                note(name, "srv", (cpu_seconds(server.pid) - server_before) / (size / GiB))
                note(name, "total", results[name]["cpu"][-1] + results[name]["srv"][-1] + reader / (size / GiB))
                m.umount()
                if "warm" not in args.skip:
                    m.mount()
                    drop_caches()
                    pid = mount_pid(m.path)
                    before = cpu_seconds(pid)
                    note(name, "warm", size / MiB / timed(lambda: read_all(m.path / "large.bin")))
                    note(name, "warm_cpu", (cpu_seconds(pid) - before) / (size / GiB))
                    m.umount()
                if "parallel" not in args.skip:
                    m.wipe_cache()
                    m.mount()
                    drop_caches()
                    pid = mount_pid(m.path)
                    before = cpu_seconds(pid)
                    note(name, "par", PARALLEL * part / MiB / all_at_once(
                        [["cat", str(m.path / n)] for n in names]))
                    note(name, "par_cpu", (cpu_seconds(pid) - before) / (PARALLEL * part / GiB))
                    m.umount()
            if "cold" not in args.skip:
                drop_caches()
                server_before = cpu_seconds(server.pid)
                seconds, reader = child_run(curl(urls["/large.bin"]))
                note("curl", "cold", size / MiB / seconds)
                note("curl", "reader", reader / (size / GiB))
                note("curl", "srv", (cpu_seconds(server.pid) - server_before) / (size / GiB))
                note("curl", "total", (reader + cpu_seconds(server.pid) - server_before) / (size / GiB))
                if "parallel" not in args.skip:
                    drop_caches()
                    note("curl", "par", PARALLEL * part / MiB / all_at_once([curl(urls["/" + n]) for n in names]))
                if "warm" not in args.skip:
                    m = next(iter(mounts.values()))
                    cache_file = max((m.cache_dir / "blocks" / "data").iterdir(), key=lambda p: p.stat().st_size)
                    drop_caches()
                    note("curl", "warm", size / MiB / timed(lambda: read_all(cache_file)))
            print(f"rep {rep}: " + "; ".join(f"{n} " + " ".join(f"{k}={v[-1]:.2f}" for k, v in r.items())
                                            for n, r in results.items() if r), flush=True)
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print(f"\n== read A/B, Cloudreve {args.dialect}, {args.size_mib} MiB, medians of {args.reps}")
    if args.random_reads:
        for name in trees:
            r = med[name]
            print(f"  {name:>6}: random 4 KiB preads, cold cache {r['rand']:5.0f} /s  "
                  f"p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  mount cpu {r['rand_cpu']:.2f} ms/read  "
                  f"server cpu {r['rand_srv']:.2f} ms/read")
    if "cold" in args.skip:
        return
    base_line = med["curl"]
    print(f"  baseline: curl {base_line['cold']:.0f} MiB/s (server cpu {base_line['srv']:.2f} s/GiB, "
          f"curl {base_line['reader']:.2f}, total {base_line['total']:.2f})" +
          (f", 4 curls {base_line['par']:.0f} MiB/s" if "par" in base_line else "") +
          (f", cache file {base_line['warm']:.0f} MiB/s" if "warm" in base_line else ""))
    for name in trees:
        r = med[name]
        line = f"  {name:>6}: cold {r['cold']:5.0f} MiB/s ({r['cold'] / base_line['cold']:.2f})  cpu {r['cpu']:.2f} s/GiB (main {r['main']:.2f}) server {r['srv']:.2f} dd {r['reader']:.2f} total {r['total']:.2f} (curl/total {base_line['total'] / r['total']:.2f})"
        if "par" in r:
            line += f"  4 readers {r['par']:5.0f} ({r['par'] / base_line['par']:.2f}) cpu {r['par_cpu']:.2f}"
        if "warm" in r:
            line += f"  warm {r['warm']:5.0f} ({r['warm'] / base_line['warm']:.2f}) cpu {r['warm_cpu']:.2f}"
        print(line)


if __name__ == "__main__":
    main()
