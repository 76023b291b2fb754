"""``cloudfs umount`` waits for the mount process to exit: an exited process
that nobody has reaped yet (a zombie) counts as exited."""

from __future__ import annotations

import subprocess
import sys
import time

from cloudfs.cli.umount import is_running, wait_for_exit


def test_an_exited_process_not_yet_reaped_counts_as_exited():
    # our own child, left unreaped: a zombie until we wait for it, as the
    # detached mount process is until its new parent reaps it
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat", "rb") as fp:
                if b") Z " in fp.read():
                    break
            time.sleep(0.01)
        assert not is_running(child.pid)
        start = time.monotonic()
        wait_for_exit(child.pid, timeout_s=5.0)
        assert time.monotonic() - start < 1.0
    finally:
        child.wait()


def test_a_running_process_is_running_and_one_gone_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert is_running(child.pid)
        start = time.monotonic()
        wait_for_exit(child.pid, timeout_s=0.3)
        assert time.monotonic() - start >= 0.3
    finally:
        child.kill()
        child.wait()
    assert not is_running(child.pid)
