"""A/B of ``rsync -a`` into mounts of two cloudfs source trees, interleaved
run by run in one environment, with an ``rclone mount`` beside them when
rclone and wsgidav are installed (see ``mount_rsync.py``).

    .venv/bin/python bench/rsync_ab.py --a /path/to/main --b . [--reps 5] [--dialect v4]

Each mount runs ``python -m cloudfs`` from its tree (``PYTHONPATH``); the
bundled server is this checkout's.  Per run: until ``rsync`` returns, until
everything is on the server (``cloudfs umount`` returns), the mount's CPU
seconds while rsync ran, and files sent by a second rsync over a fresh
mount.  The machine is shared and noisy: the ratios are taken pair by pair
(A's run and B's run next to each other), and medians are printed.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Mount, ab_arguments, environment, importing_tree, mount_pid, cpu_seconds
from mount_rsync import free_port, make_tree, rsync, start_rclone_mount, wait_listening

KEYS = ("returns", "on_server", "cpu", "second")


def cloudfs_run(server, base: Path, tree: Path, name: str, source: Path, rep: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    # (in ``source``: ``python -m cloudfs`` imports from the working directory
    # before PYTHONPATH, so run from a checkout, A and B would both be that one)
    with importing_tree(str(source)):
        return _cloudfs_run(server, base, tree, name, rep)


def _cloudfs_run(server, base: Path, tree: Path, name: str, rep: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    mount = Mount(server, base / f"mnt-{name}", base / f"mcache-{name}", options="delete=permanent")
    mount.wipe_cache()
    mount.mount()
    pid = mount_pid(mount.path)
    target = mount.path / f"rsync-{name}-{rep}"
    target.mkdir()
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    rsync(tree, target)
    out = {"returns": time.perf_counter() - start, "cpu": cpu_seconds(pid) - cpu}
    mount.umount()
    out["on_server"] = time.perf_counter() - start
    mount.wipe_cache()
    mount.mount()
    out["second"] = rsync(tree, target)
    mount.umount()
    return out


def rclone_run(port: int, base: Path, tree: Path, rep: int) -> dict[str, float]:
    mnt, cache = base / "rmnt", base / "rcache"
    mnt.mkdir(exist_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    proc = start_rclone_mount(port, mnt, cache)
    target = mnt / f"rsync-{rep}"
    target.mkdir()
    cpu = cpu_seconds(proc.pid)
    start = time.perf_counter()
    rsync(tree, target)
    out = {"returns": time.perf_counter() - start, "cpu": cpu_seconds(proc.pid) - cpu}
    subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
    proc.wait(timeout=120)  # rclone uploads what is left before it exits
    out["on_server"] = time.perf_counter() - start
    out["second"] = float("nan")
    return out


def main() -> None:
    parser = ab_arguments(reps=5)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--wsgidav", help="path of a wsgidav command (default: the one on PATH, or beside this Python)")
    args = parser.parse_args()
    sources = {"A": args.a.resolve(), "B": args.b.resolve()}
    beside = Path(sys.executable).parent / "wsgidav"  # (installed in this venv, not on PATH)
    wsgidav = args.wsgidav or shutil.which("wsgidav") or (str(beside) if beside.exists() else None)
    with_rclone = shutil.which("rclone") is not None and bool(wsgidav)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*sources, *(["rclone"] if with_rclone else [])]}
    with environment(capacity=4 << 30, dialect=args.dialect) as (server, base):
        tree = base / "tree"
        make_tree(tree, args.files)
        dav = None
        if with_rclone:
            (base / "dav").mkdir()
            port = free_port()
            dav = subprocess.Popen([str(wsgidav), "--host", "127.0.0.1", "--port", str(port), "--root",
                                    str(base / "dav"), "--auth", "anonymous", "-q"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_listening(port)
        try:
            for rep in range(args.reps):
                for name, source in sources.items():
                    runs[name].append(cloudfs_run(server, base, tree, name, source, rep))
                if with_rclone:
                    runs["rclone"].append(rclone_run(port, base, tree, rep))
                print(f"run {rep + 1}: rsync returns " + ", ".join(f"{n} {r[-1]['returns']:.2f} s"
                                                                  for n, r in runs.items()), flush=True)
        finally:
            if dav is not None:
                dav.terminate()
                dav.wait()
    print(f"\n== rsync -a {args.files} x 16 KiB + 2 x 32 MiB, {args.dialect}, medians of {args.reps}, interleaved")
    print("  A = " + str(sources["A"]) + ", B = " + str(sources["B"]))
    for name, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in KEYS}
        print(f"  {name:6s}  rsync returns {med['returns']:6.2f} s  all on the server {med['on_server']:6.2f} s  "
              f"mount CPU while rsync ran {med['cpu']:5.2f} s  second rsync sent {med['second']:.0f}")
    pairs = [b["returns"] / a["returns"] for a, b in zip(runs["A"], runs["B"])]
    print(f"  B / A rsync returns, pair by pair: median {statistics.median(pairs):.2f} "
          f"({', '.join(f'{p:.2f}' for p in pairs)})")
    cpu = [b["cpu"] / a["cpu"] for a, b in zip(runs["A"], runs["B"])]
    print(f"  B / A mount CPU, pair by pair: median {statistics.median(cpu):.2f}")
    if with_rclone:
        for name in sources:
            speed = [r["returns"] / c["returns"] for c, r in zip(runs[name], runs["rclone"])]
            print(f"  {name}: rsync returns at {statistics.median(speed):.2f}x rclone's speed (>= 1: no slower)")


if __name__ == "__main__":
    main()
