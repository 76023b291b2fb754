"""``cloudfs status [MOUNTPOINT]``: every cloudfs mount of this user (or one),
with server reachability, capacity, cache use and pending uploads."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cloudfs.cli import control
from cloudfs.cli.target import mount_target

#: pending uploads plain output names one by one; past that it counts them (--json lists all)
LISTED_UPLOADS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", nargs="?",
                        help="one mount: its directory, or a remote named in the config file (default: all)")
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


def collect(mountpoint: str | None) -> list[dict[str, Any]]:
    if mountpoint is not None:
        paths = [control.socket_path(mount_target(mountpoint))]
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
             f"{'reachable' if status['reachable'] else 'UNREACHABLE'}  pid {status.get('pid', '?')}"]
    capacity = status.get("capacity")
    if capacity:
        lines.append(f"  capacity: {human(capacity['used'])} used of {human(capacity['total'])}")
    cache = status["cache"]
    lines.append(f"  cache: {human(cache['used'])} of {human(cache['cap'])} ({cache['dir']})")
    if status.get("offline"):
        lines.append("  offline: showing the last known state; pinned and cached files stay readable")
    pins = status.get("pins") or {}
    if pins.get("paths"):
        lines.append(f"  offline files: {len(pins['paths'])} pinned, {pins['files']} files, "
                     f"{human(pins['cached'])} of {human(pins['bytes'])} cached"
                     + (f"  error: {pins['error']}" if pins.get("error") else ""))
        lines += [f"    {path}" for path in pins["paths"][:LISTED_UPLOADS]]
    lines.append(f"  {uploads_summary(status)}")
    # failing uploads first: a person needs to see those, not the ones merely waiting
    uploads = sorted(status["uploads"], key=lambda upload: not upload.get("error"))
    for upload in uploads[:LISTED_UPLOADS]:
        done = f"{upload['done'] * 100 // max(upload['size'], 1)}%" if upload["state"] == "uploading" else ""
        error = f"  error: {upload['error']}" if upload.get("error") else ""
        lines.append(f"    {upload['path']}  {human(upload['size'])}  {upload['state']} {done}{error}".rstrip())
    if len(uploads) > LISTED_UPLOADS:
        lines.append(f"    ... and {len(uploads) - LISTED_UPLOADS} more (cloudfs status --json lists them all)")
    return "\n".join(lines)


def uploads_summary(status: dict[str, Any]) -> str:
    """One line of upload totals: how many wait, how much is left to send, how many are done."""
    uploads = status["uploads"]
    failing = sum(1 for upload in uploads if upload.get("error"))
    left = sum(max(upload["size"] - upload["done"], 0) for upload in uploads)
    line = f"uploads: {len(uploads)} pending"
    if uploads:
        line += f" ({human(left)} to send)"
    if failing:
        line += f", {failing} failing"
    return line + f", {status.get('uploaded', 0)} done"


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


def watch(mountpoint: str | None) -> int:
    """Refresh every second: per mount a line of totals (also when nothing
    is pending), and a bar per upload on a terminal."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    from cloudfs.cli.progress import UploadProgress

    console = Console()
    if not console.is_terminal:
        return watch_lines(mountpoint)
    progress = UploadProgress(console=console)
    try:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            while True:
                statuses = collect(mountpoint)
                progress.update([u for s in statuses for u in s["uploads"]])
                lines = [Text(f"{s['mountpoint']}  {'reachable' if s['reachable'] else 'UNREACHABLE'}  "
                              f"{uploads_summary(s)}") for s in statuses] or [Text("no cloudfs mounts")]
                live.update(Group(*lines, progress.bars))
                time.sleep(1)
    except KeyboardInterrupt:
        return 0


def watch_lines(mountpoint: str | None) -> int:
    """``--watch`` into a pipe or file: a line per mount whenever its totals change."""
    last: dict[str, str] = {}
    try:
        while True:
            statuses = collect(mountpoint)
            if not statuses and last.get("") != "none":
                print("no cloudfs mounts", flush=True)
                last = {"": "none"}
            for status in statuses:
                line = f"{status['mountpoint']}  {uploads_summary(status)}"
                if last.get(status["mountpoint"]) != line:
                    print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)
                    last[status["mountpoint"]] = line
            time.sleep(1)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
