"""``cloudfs demo [MOUNTPOINT] [--backend koodrive]``: the bundled server with a
sample tree, mounted.

Starts ``cloudfs server`` (a Cloudreve 4 drive, or with ``--backend koodrive``
the KooDrive emulator) on a free local port with a data dir of its own (kept
between runs, one per backend), fills it with sample files the first time,
mounts it, prints what to try, and on Ctrl-C unmounts (after pending uploads)
and stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cloudfs.config import state_dir

#: backend name -> the bundled server's dialect
DIALECTS = {"cloudreve": "v4", "koodrive": "koodrive"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", type=Path, nargs="?", help="where to mount (default ~/cloudfs-demo)")
    parser.add_argument("--data", type=Path, help="server data dir (default: in cloudfs's state dir)")
    parser.add_argument("--backend", choices=sorted(DIALECTS), default="cloudreve",
                        help="the kind of drive to serve and mount (default: cloudreve, a Cloudreve 4 drive)")
    parser.add_argument("--no-wait", action="store_true",
                        help="mount and return, leaving the server and the mount running (for scripts)")


def run(args: argparse.Namespace) -> int:
    from cloudfs.cli.mountpoint import MountError, check_fuse
    from cloudfs.server.testing.demo_tree import seed_demo_tree
    from cloudfs.server.testing import DEFAULT_PASSWORD, DEFAULT_USER, start_server

    mountpoint = (args.mountpoint or Path.home() / "cloudfs-demo").expanduser().resolve()
    dialect = DIALECTS[args.backend]
    own = "" if args.backend == "cloudreve" else f"{args.backend}-"  # each backend's drive apart
    data = (args.data or state_dir() / "demo" / f"{own}server").expanduser()
    try:
        check_fuse()
    except MountError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 1
    mountpoint.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    seeded = data / ".demo-seeded"
    if not seeded.exists():
        # the server creates the account on its first start; the tree goes in while it is stopped
        start_server(data, faults=False, dialect=dialect).stop()
        seed_demo_tree(data, DEFAULT_USER)  # both dialects keep their tree in the same store
        seeded.touch()
    # in a session of its own: the terminal's Ctrl-C must not stop the server
    # before the mount (also in its own session) has uploaded what is pending
    server = start_server(data, faults=False, own_session=True, dialect=dialect)
    print(f"cloudfs demo server ({args.backend}): {server.url}  (user {DEFAULT_USER}, password {DEFAULT_PASSWORD})")
    mount = [sys.executable, "-m", "cloudfs", "mount", server.url, str(mountpoint), "--user", DEFAULT_USER,
             "--backend", args.backend, "--cache-dir", str(data.parent / f"{own}cache")]
    env = dict(os.environ, CLOUDFS_PASSWORD=DEFAULT_PASSWORD)
    if subprocess.run(mount, env=env).returncode != 0:
        server.stop()
        return 1
    print(f"""
Mounted on {mountpoint}. Try, in another terminal:

    ls -la {mountpoint}
    cat "{mountpoint}/README.txt"
    sha256sum {mountpoint}/Large/large-64MiB.bin
    cp -r /etc/default {mountpoint}/copied && ls {mountpoint}/copied
    df -h {mountpoint}
    {sys.executable} -m cloudfs status
""")
    if args.no_wait:
        print(f"Left running. Stop with: cloudfs umount {mountpoint} && kill {server.pid}")
        return 0
    print("Press Ctrl-C to unmount and stop the server.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nunmounting (after the pending uploads)...")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        # umount waits for the uploads, and names those that could not finish
        umount = subprocess.run([sys.executable, "-m", "cloudfs", "umount", str(mountpoint)])
        server.stop()
    if umount.returncode != 0:
        print("cloudfs demo: the server is stopped; uploads still pending stay journaled and are sent "
              "the next time the demo runs", file=sys.stderr)
        return 1
    print("unmounted; the server is stopped")
    return 0
