"""Live changes: how soon another client's change shows in the mount, and what an idle mount costs.

    .venv/bin/python bench/mount_changes.py [--rounds 5] [--tree 10000] [--idle-s 180]

* latency: another client (plain HTTP, as the web UI) creates, modifies,
  renames and deletes files; the time until ``ls``/``stat`` in the mount
  shows each change, with the server's default 5 s debounce (events=auto);
* idle requests: a tree of ``--tree`` files in 100 folders, ``ls -lR`` of it
  every 10 s (a file manager's refresh), the requests the mount sends per
  minute with the change feed (events=auto) and without (events=off, the
  plain 60 s metadata TTL), counted by the server.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Mount, Row, environment, mount_status, print_table  # noqa: E402

from cloudfs.server.testing import RunningServer  # noqa: E402
from tests.server.helpers import Api, uri  # noqa: E402


def wait_for(predicate, timeout: float = 120.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the change never showed")
        time.sleep(0.02)
    return time.monotonic()


def latency_round(api: Api, mnt: Path, n: int) -> dict[str, float]:
    """One create, modify, rename and delete made together; seconds until each shows."""
    folder = f"/lat{n}"
    api.mkdir(folder)
    api.put(f"{folder}/mod.txt", b"old")
    api.put(f"{folder}/ren.txt", b"r")
    api.put(f"{folder}/del.txt", b"d")
    local = mnt / folder.lstrip("/")
    wait_for(lambda: local.is_dir() and sorted(os.listdir(local)) == ["del.txt", "mod.txt", "ren.txt"])
    time.sleep(6)  # past the debounce of the set-up changes
    assert sorted(os.listdir(local)) == ["del.txt", "mod.txt", "ren.txt"]
    os.stat(local / "mod.txt")  # cached by the kernel and the mount from now on
    made = time.monotonic()
    api.put(f"{folder}/new.txt", b"n")
    api.put(f"{folder}/mod.txt", b"new content", previous=api.info(f"{folder}/mod.txt")["data"]["primary_entity"])
    api.ok("POST", "/file/rename", json={"uri": uri(f"{folder}/ren.txt"), "new_name": "renamed.txt"})
    api.delete(f"{folder}/del.txt")
    seen: dict[str, float] = {}
    checks = {
        "create": lambda: "new.txt" in os.listdir(local),
        "modify": lambda: os.stat(local / "mod.txt").st_size == 11,
        "rename": lambda: "renamed.txt" in os.listdir(local) and "ren.txt" not in os.listdir(local),
        "delete": lambda: "del.txt" not in os.listdir(local),
    }
    deadline = made + 120
    while len(seen) < len(checks) and time.monotonic() < deadline:
        for kind, check in checks.items():
            if kind not in seen and check():
                seen[kind] = time.monotonic() - made
        time.sleep(0.02)
    return seen


def make_tree(api: Api, files: int) -> None:
    folders = 100
    for f in range(folders):
        api.mkdir(f"/tree/d{f:03}")

    def touch(i: int) -> None:
        with Api(api.server) as own:
            for j in range(i, files, 8):
                own.touch(f"/tree/d{j % folders:03}/f{j:05}.txt")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(touch, range(8)))


def idle_requests(server: RunningServer, base: Path, options: str, seconds: float) -> tuple[float, str]:
    mount = Mount(server, base / f"mnt-{options}", base / f"cache-{options}", options)
    mount.mount()
    try:
        time.sleep(2)  # the feed connects
        mode = mount_status(mount.path)["changes"]["mode"]
        subprocess.run(["ls", "-lR", str(mount.path / "tree")], capture_output=True, check=True)  # warm
        server.faults.set(path_regex="^/api/")  # no effect: counts requests
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            subprocess.run(["ls", "-lR", str(mount.path / "tree")], capture_output=True, check=True)
            time.sleep(max(0.0, 10 - (time.monotonic() - start) % 10))
        count = server.faults.stats()["matched"]
        server.faults.clear()
    finally:
        mount.umount()
    return count * 60 / seconds, mode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", type=int, default=10000)
    parser.add_argument("--idle-s", type=float, default=180.0)
    args = parser.parse_args()
    rows: list[Row] = []
    with environment(faults=True) as (server, base):  # Cloudreve's defaults: 5 s debounce
        with Api(server) as api:
            mount = Mount(server, base / "mnt", base / "cache", "")
            mount.mount()
            try:
                time.sleep(2)
                samples: dict[str, list[float]] = {}
                for n in range(args.rounds):
                    for kind, seconds in latency_round(api, mount.path, n).items():
                        samples.setdefault(kind, []).append(seconds)
            finally:
                mount.umount()
            every = [s for values in samples.values() for s in values]
            for kind, values in [*samples.items(), ("all", every)]:
                rows.append(Row(f"change -> visible, {kind} (p50 / max, n={len(values)})",
                                f"{statistics.median(values):.2f} s / {max(values):.2f} s",
                                "<= 60 s (metadata_ttl)", None, "<= 7 s"))
            make_tree(api, args.tree)
        on, on_mode = idle_requests(server, base, "events=auto", args.idle_s)
        off, off_mode = idle_requests(server, base, "events=off", args.idle_s)
        rows.append(Row(f"requests/min, idle {args.tree}-file tree, ls -lR every 10 s",
                        f"{on:.1f} ({on_mode})", f"{off:.1f} ({off_mode})", on / off if off else None))
    print_table("live changes (change feed) vs TTL, Cloudreve v4", rows)


if __name__ == "__main__":
    main()
