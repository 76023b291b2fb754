"""Where each file's time goes: the kernel's FUSE requests of an ``rsync -a``
into the mount, by type, counted and timed by the kernel itself.

    sudo .venv/bin/python bench/fuse_requests.py [--files 500] [--dialect v4]

Uses the kernel's ``fuse:fuse_request_send`` / ``fuse:fuse_request_end``
tracepoints through ``perf record`` (root, or ``perf_event_paranoid`` allowing
tracepoints).  Prints, for the mount's connection: requests per file by type
and how long the kernel waited for each (from sending the request to the
mount's reply: the mount's work, its scheduling, and the reply's wake-up).
A create and a rename are each followed by a GETATTR of the folder (the
kernel drops a folder's attributes when it changes, and with
``default_permissions`` reads its mode again before the next path walk), and
a close after a write by a GETATTR of the file (a write drops its size and
mtime in the kernel): neither is the mount's choice.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from harness import Mount, Row, environment, script_main
from mount_rsync import make_tree

REQUEST = re.compile(r"(\d+\.\d+): +fuse:fuse_request_(send|end): connection (\d+) req (\d+)(?: opcode \d+ \((\w+)\))?")


def request_times(perf_data: Path) -> dict[str, list[float]]:
    """Seconds each request took, by type, on the connection that made the most creates."""
    script = subprocess.run(["perf", "script", "-i", str(perf_data)], capture_output=True, text=True,
                            check=True).stdout
    sent: dict[tuple[str, str], tuple[float, str]] = {}
    by_connection: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in script.splitlines():
        found = REQUEST.search(line)
        if found is None:
            continue
        at, kind, connection, request, op = found.groups()
        key = (connection, request)
        if kind == "send":
            sent[key] = (float(at), op)
        elif key in sent:
            start, op = sent.pop(key)
            by_connection[connection][op.removeprefix("FUSE_")].append(float(at) - start)
    if not by_connection:
        return {}
    ours = max(by_connection, key=lambda c: len(by_connection[c].get("CREATE", [])))
    return dict(by_connection[ours])


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed")
    with environment(capacity=4 << 30, dialect=dialect) as (server, base):
        tree = base / "tree"
        make_tree(tree, args.files)
        files = args.files + 2
        mount = Mount(server, base / "mnt", base / "mcache", options="delete=permanent")
        mount.mount()
        try:
            target = mount.path / "rsync"
            target.mkdir()
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp) / "perf.data"
                subprocess.run(["perf", "record", "-q", "-a", "-e", "fuse:fuse_request_send",
                                "-e", "fuse:fuse_request_end", "-o", str(data), "--",
                                "rsync", "-a", f"{tree}/", f"{target}/"], check=True)
                times = request_times(data)
        finally:
            mount.umount()
    total = sum(len(v) for v in times.values())
    rows = [Row(f"FUSE requests per file ({files} files)", f"{total / files:.1f}")]
    for op, spent in sorted(times.items(), key=lambda item: -sum(item[1])):
        rows.append(Row(f"  {op}: per file, median / mean wait", f"{len(spent) / files:.2f}",
                        f"{statistics.median(spent) * 1e3:.3f} / {statistics.mean(spent) * 1e3:.3f} ms",
                        None, f"{sum(spent):.2f} s in all"))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)


def main() -> None:
    script_main("FUSE requests of rsync -a", add_arguments, run)


if __name__ == "__main__":
    main()
