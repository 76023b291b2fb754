#!/usr/bin/env python3
"""Benchmark: download a large file through ``cloudfs server`` vs. reading its blob.

One run: start the bundled server on a temp data dir, put a file of
``--size`` bytes (default 1 GiB) into it through the store layer, fetch a
signed URL, then alternate, ``--reps`` times each (after one warm-up):

* ``disk``:   ``cat <blob> > /dev/null`` (page cache warm: the floor)
* ``python``: read the blob in 1 MiB pieces from Python
* ``server``: ``curl -s -o /dev/null <signed url>`` (HTTP/1.1 over loopback)

and print the median time and throughput of each, plus the server/disk ratio.

    .venv/bin/python bench/server_download.py [--size 1073741824] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloudfs.server.common.db import Database
from cloudfs.server.common.store import Store, new_blob_name
from cloudfs.server.testing import start_server


def put_file(data_dir: Path, name: str, size: int) -> Path:
    """Write ``size`` pseudo-random bytes as a file of the first account, via the store."""
    db = Database(data_dir)
    try:
        store = Store(db)
        uid = int(db.conn.execute("SELECT id FROM users ORDER BY id LIMIT 1").fetchone()[0])
        root = store.root(uid)
        assert root is not None
        blob = new_blob_name()
        path = store.blob_path(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(1 << 20)
        with open(path, "wb") as fh:
            left, i = size, 0
            while left > 0:
                piece = block[: min(left, len(block))]
                fh.write(piece[i % 251:] + piece[: i % 251])  # vary blocks a little
                left -= len(piece)
                i += 1
        with db.tx():
            row = store.create_file(root, name, None)
            entity = store.create_entity(row, size, blob, None, uid)
            store.upgrade_placeholder(row, entity, None)
        return path
    finally:
        db.close()


def api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(base + "/api/v4" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req) as resp:
        out = json.loads(resp.read())
    if out["code"] != 0:
        raise RuntimeError(out)
    return out["data"]


def timed(cmd: list[str] | None = None, func=None) -> float:
    start = time.perf_counter()
    if cmd is not None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    else:
        func()
    return time.perf_counter() - start


def python_read(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        while fh.read(1 << 20):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1 << 30)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is required", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="cloudfs-bench-"))
    try:
        with start_server(tmp / "data", capacity=args.size * 2, faults=False) as srv:
            blob = put_file(srv.data_dir, "bench.bin", args.size)
            token = api(srv.url, "POST", "/session/token", {"email": srv.email, "password": srv.password})
            access = token["token"]["access_token"]
            url = api(srv.url, "POST", "/file/url", {"uris": ["cloudreve://my/bench.bin"]}, access)["urls"][0]["url"]
            curl = ["curl", "-s", "--fail", "-o", "/dev/null", url]
            runs: dict[str, list[float]] = {"disk (cat)": [], "disk (python)": [], "server (curl)": []}
            # warm-up: page cache, connection paths, lazy imports
            timed(["cat", str(blob)])
            timed(curl)
            for _ in range(args.reps):
                runs["disk (cat)"].append(timed(["sh", "-c", f"cat '{blob}' > /dev/null"]))
                runs["disk (python)"].append(timed(func=lambda: python_read(blob)))
                runs["server (curl)"].append(timed(curl))
            mib = args.size / (1 << 20)
            print(f"file: {args.size} bytes ({mib:.0f} MiB), {args.reps} repetitions, medians:")
            medians = {name: statistics.median(times) for name, times in runs.items()}
            for name, med in medians.items():
                print(f"  {name:15s} {med:7.3f} s  {mib / med:8.1f} MiB/s   "
                      f"(runs: {', '.join(f'{t:.3f}' for t in runs[name])})")
            ratio = medians["server (curl)"] / medians["disk (cat)"]
            print(f"ratio server/disk(cat): {ratio:.2f}x   "
                  f"server/disk(python): {medians['server (curl)'] / medians['disk (python)']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
