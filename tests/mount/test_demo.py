"""``cloudfs demo --backend koodrive``: the KooDrive emulator with the sample
tree, mounted like the Cloudreve demo (whose Ctrl-C test is in test_cli.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from cloudfs.cli.mountpoint import is_mounted
from cloudfs.server.testing.demo_tree import LARGE_NAME, LARGE_SIZE
from tests.mount.conftest import force_unmount, run_cloudfs


def test_demo_mounts_a_sample_koodrive_drive(tmp_path: Path) -> None:
    mnt, data = tmp_path / "demo", tmp_path / "server"
    result = run_cloudfs("demo", str(mnt), "--data", str(data), "--backend", "koodrive", "--no-wait", timeout=180)
    stop = re.search(r"kill (\d+)", result.stdout)
    try:
        assert result.returncode == 0, result.stderr
        assert "(koodrive)" in result.stdout
        assert is_mounted(mnt)
        assert sorted(os.listdir(mnt)) == sorted(["Documents", "Empty folder", "Large", "Music", "Photos",
                                                  "Ünïcödé 日本語", "empty.txt", "README.txt"])
        assert (mnt / "README.txt").read_text().startswith("Cloudreve demo drive")  # the one sample tree
        assert os.stat(mnt / "Large" / LARGE_NAME).st_size == LARGE_SIZE
        (mnt / "Documents" / "new.txt").write_text("written on KooDrive")
        usage = os.statvfs(mnt)
        assert usage.f_blocks * usage.f_frsize > 0  # df: the emulated user's quota
        status = run_cloudfs("status", str(mnt), "--json", check=True)
        assert "koodrive" in status.stdout
        assert run_cloudfs("umount", str(mnt), timeout=120).returncode == 0
        assert not is_mounted(mnt)
    finally:
        force_unmount(mnt)
        if stop is not None:
            os.kill(int(stop.group(1)), signal.SIGTERM)
    # a second run serves the same drive (kept in --data), with what was written
    result = run_cloudfs("demo", str(mnt), "--data", str(data), "--backend", "koodrive", "--no-wait", timeout=180)
    stop = re.search(r"kill (\d+)", result.stdout)
    try:
        assert result.returncode == 0, result.stderr
        assert (mnt / "Documents" / "new.txt").read_text() == "written on KooDrive"
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
        if stop is not None:
            os.kill(int(stop.group(1)), signal.SIGTERM)
