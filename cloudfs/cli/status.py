"""``cloudfs status [MOUNTPOINT]``: every cloudfs mount of this user (or one),
with server reachability, capacity, cache use and pending uploads."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cloudfs.cli import control


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", type=Path, nargs="?", help="one mount (default: all)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--watch", action="store_true", help="refresh every second, with progress bars")


def human(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def collect(mountpoint: Path | None) -> list[dict[str, Any]]:
    if mountpoint is not None:
        paths = [control.socket_path(mountpoint.expanduser().resolve())]
    else:
        paths = control.running_mounts()
    out = []
    for path in paths:
        try:
            out.append(next(control.request(path, "status")))
        except (OSError, StopIteration, ValueError):
            if mountpoint is not None:
                raise SystemExit(f"cloudfs: {mountpoint} is not a running cloudfs mount")
    return out


def render(status: dict[str, Any]) -> str:
    lines = [f"{status['mountpoint']}  {status['url']}  {status.get('user') or ''}  "
             f"{'reachable' if status['reachable'] else 'UNREACHABLE'}"]
    capacity = status.get("capacity")
    if capacity:
        lines.append(f"  capacity: {human(capacity['used'])} used of {human(capacity['total'])}")
    cache = status["cache"]
    lines.append(f"  cache: {human(cache['used'])} of {human(cache['cap'])} ({cache['dir']})")
    uploads = status["uploads"]
    lines.append(f"  uploads: {len(uploads)} pending, {status.get('uploaded', 0)} done")
    for upload in uploads:
        done = f"{upload['done'] * 100 // max(upload['size'], 1)}%" if upload["state"] == "uploading" else ""
        error = f"  error: {upload['error']}" if upload.get("error") else ""
        lines.append(f"    {upload['path']}  {human(upload['size'])}  {upload['state']} {done}{error}".rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return watch(args.mountpoint)
    statuses = collect(args.mountpoint)
    if args.json:
        json.dump(statuses, sys.stdout, indent=2)
        print()
    elif not statuses:
        print("no cloudfs mounts")
    else:
        print("\n\n".join(render(s) for s in statuses))
    return 0


def watch(mountpoint: Path | None) -> int:
    from cloudfs.cli.progress import UploadProgress

    try:
        with UploadProgress() as progress:
            while True:
                uploads = [u for s in collect(mountpoint) for u in s["uploads"]]
                progress.update(uploads)
                time.sleep(1)
    except KeyboardInterrupt:
        return 0
