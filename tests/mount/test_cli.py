"""The commands as a user runs them: errors before mounting, login, systemd
readiness, status and the fstab helper (the unit files: test_install.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudfs.cli.mountpoint import is_mounted
from cloudfs.client import tokenstore
from cloudfs.server.testing import RunningServer
from tests.mount.conftest import CLOUDFS, Drive, Remote, force_unmount, run_cloudfs, wait_until


def mount_error(server: RunningServer, mountpoint: Path, *args: str, url: str | None = None,
                password: str | None = None, already_mounted: bool = False, input: str | None = None) -> str:
    result = run_cloudfs("mount", url or server.url, str(mountpoint), "--user", server.email, *args,
                         password=server.password if password is None else password, timeout=60, input=input)
    assert result.returncode != 0, "the mount should have failed"
    assert not is_mounted(mountpoint) or already_mounted
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, no traceback
    return lines[0]


def test_cli_mount_errors_before_anything_is_mounted(server: RunningServer, tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    assert "does not exist" in mount_error(server, tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    assert "not a directory" in mount_error(server, tmp_path / "file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "not empty" in mount_error(server, tmp_path / "full")

    started = time.monotonic()
    message = mount_error(server, mnt, url="http://127.0.0.1:9")
    assert "127.0.0.1:9" in message and time.monotonic() - started < 40
    assert "password" in mount_error(server, mnt, password="wrong-password").lower()

    with subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as web:
        try:
            line = web.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
            port = line.split(" port ")[1].split()[0]
            assert "not a cloudreve server" in mount_error(server, mnt, url=f"http://127.0.0.1:{port}").lower()
        finally:
            web.terminate()


def test_cli_already_mounted(drive: Drive):
    assert "already a mountpoint" in mount_error(drive.server, drive.path, already_mounted=True)
    assert os.listdir(drive.path) is not None  # and the existing mount is untouched


def test_cli_login_then_mount_without_a_password(server: RunningServer, tmp_path: Path):
    result = run_cloudfs("login", server.url, "--user", server.email, password=server.password, check=True)
    assert "logged in" in result.stdout
    # the token store's own file (not every state file named like it: mount logs
    # named after token tests live in the same folder)
    tokens = tokenstore.default_path()
    assert tokens.is_relative_to(os.environ["XDG_STATE_HOME"]) and tokens.is_file()
    assert tokens.stat().st_mode & 0o077 == 0
    assert server.password not in tokens.read_text()
    d = Drive(server, tmp_path / "mnt", tmp_path / "cache")
    d.path.mkdir()
    run_cloudfs("mount", server.url, str(d.path), "--user", server.email, "--cache-dir", str(d.cache_dir),
                password=None, check=True)
    d.mounted = True
    try:
        assert os.listdir(d.path) is not None
    finally:
        d.umount()
    run_cloudfs("logout", server.url, "--user", server.email, check=True)
    result = run_cloudfs("mount", server.url, str(d.path), "--user", server.email, password=None)
    assert result.returncode != 0 and "password" in result.stderr.lower()


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a command that failed as bad input should: non-zero, one line, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_a_given_password_is_used_whatever_is_stored(server: RunningServer, tmp_path: Path):
    run_cloudfs("login", server.url, "--user", server.email, "--password-stdin", input=server.password + "\n",
                check=True)
    try:
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        # regression: with a login stored, a wrong password mounted anyway with the stored login
        assert "password" in mount_error(server, mnt, password="wrong-password").lower()
        wrong = tmp_path / "wrong.password"
        wrong.write_text("wrong-password\n")
        assert "password" in mount_error(server, mnt, "--password-file", str(wrong), password="").lower()
        assert "password" in mount_error(server, mnt, "--password-stdin", password="", input="wrong\n").lower()
        # regression: a failed login deleted the stored one, which was still valid
        assert "password" in one_line(run_cloudfs("login", server.url, "--user", server.email,
                                                  password="wrong-password")).lower()
        d = Drive(server, mnt, tmp_path / "cache")
        run_cloudfs("mount", server.url, str(mnt), "--user", server.email, "--cache-dir", str(d.cache_dir),
                    password=None, check=True)
        d.mounted = True
        try:
            assert os.listdir(mnt) is not None
        finally:
            d.umount()
    finally:
        run_cloudfs("logout", server.url, "--user", server.email)


def test_cli_password_stdin_with_nothing_on_it(server: RunningServer, tmp_path: Path):
    for command in (["login", server.url], ["mount", server.url, str(tmp_path)]):
        message = one_line(run_cloudfs(*command, "--user", server.email, "--password-stdin", input=""))
        assert "--password-stdin" in message and "standard input" in message
    # no password at all, and no terminal to ask on: says how to give one
    message = one_line(run_cloudfs("login", server.url, "--user", server.email))
    assert "no terminal" in message and "--password-stdin" in message
    (tmp_path / "empty").write_text("")
    assert "is empty" in one_line(run_cloudfs("login", server.url, "--user", server.email,
                                              "--password-file", str(tmp_path / "empty")))


@pytest.mark.v4_only("dialect-neutral (the CLI's choice of store); mounts twice")
def test_cli_mount_stores_its_login_only_when_asked(server: RunningServer, tmp_path: Path):
    from cloudfs.client.tokenstore import TokenStore

    store = TokenStore()
    store.delete(server.url)
    d = Drive(server, tmp_path / "mnt", tmp_path / "cache")
    d.mount()
    d.umount()
    assert store.load(server.url, server.email) is None
    d.extra = ("--store-login",)
    d.mount()
    try:
        assert store.load(server.url, server.email) is not None
    finally:
        d.umount()
        run_cloudfs("logout", server.url, "--user", server.email)


@pytest.mark.v4_only("dialect-neutral (systemd notification) and slow (~60 s): once is enough")
def test_cli_notify_socket_gets_ready_after_the_mount_is_usable(server: RunningServer, tmp_path: Path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), CLOUDFS_PASSWORD=server.password)
    proc = subprocess.Popen([*CLOUDFS, "mount", server.url, str(mnt), "--user", server.email, "--foreground",
                             "--cache-dir", str(tmp_path / "cache")], env=env, stderr=subprocess.DEVNULL)
    try:
        message = sock.recv(4096).decode()
        assert "READY=1" in message
        assert is_mounted(mnt) and isinstance(os.listdir(mnt), list)
        run_cloudfs("umount", str(mnt), check=True)
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        force_unmount(mnt)
        sock.close()


@pytest.mark.v4_only("dialect-neutral (logging)")
def test_cli_foreground_logs_without_verbose(server: RunningServer, tmp_path: Path):
    # regression: without -v a --foreground mount logged nothing (an empty journal under a supervisor)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    env["CLOUDFS_PASSWORD"] = server.password
    with open(tmp_path / "stderr", "w+") as err:
        proc = subprocess.Popen([*CLOUDFS, "mount", server.url, str(mnt), "--user", server.email, "--foreground",
                                 "--cache-dir", str(tmp_path / "cache"), "-o", "upload_delay=0.1"],
                                env=env, stdin=subprocess.DEVNULL, stderr=err)
        try:
            wait_until(lambda: is_mounted(mnt), timeout=30)
            (mnt / "logged.txt").write_text("hello\n")
            run_cloudfs("umount", str(mnt), check=True)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            force_unmount(mnt)
        err.seek(0)
        logged = err.read()
    assert f"mounted {server.url} on {mnt}" in logged, logged
    assert "uploaded /logged.txt" in logged and f"unmounted {mnt}" in logged, logged
    assert server.password not in logged


def test_cli_status_lists_pending_uploads(drive: Drive):
    # (a session's requests, or Cloudreve 4's one request for a small file)
    drive.server.faults.set(path_regex="/file/upload|/file/content$", latency_s=1.5)
    (drive / "pending.bin").write_bytes(b"x" * 100_000)
    out = run_cloudfs("status", check=True).stdout
    assert str(drive.path) in out and drive.server.url in out and "reachable" in out
    assert "/pending.bin" in out and ("waiting" in out or "uploading" in out)
    drive.server.faults.clear()
    wait_until(lambda: "/pending.bin" not in run_cloudfs("status", str(drive.path)).stdout, timeout=30)


def test_cli_status_names_the_pid_and_sums_up_many_uploads(drive: Drive):
    # the uploads fail until the checks are done: pending for as long as they take
    # (3 s of latency each let the first land during a slow --watch on a loaded machine)
    drive.server.faults.set(path_regex="/file/upload|/file/content$", error_rate=1.0)
    files = [drive / f"many-{i}.bin" for i in range(8)]
    try:
        for path in files:
            path.write_bytes(b"y" * 10_000)
        out = run_cloudfs("status", str(drive.path), check=True).stdout
        watched = watch_output(drive)
    finally:
        drive.server.faults.clear()
    for path in files:  # upload now, not after the retry delay the failures built up
        with open(path, "rb") as fp:
            os.fsync(fp.fileno())
    # regression: the pid the README points to was missing; every pending file was listed
    assert f"pid {drive.pid()}" in out.splitlines()[0]
    assert "uploads: 8 pending" in out and "... and 3 more" in out, out
    assert sum("/many-" in line for line in out.splitlines()) == 5, out
    assert all("8 pending" in shown for shown in watched), watched
    wait_until(lambda: "/many-" not in run_cloudfs("status", str(drive.path)).stdout, timeout=60)
    # regression: --watch showed nothing while nothing was pending
    for idle in watch_output(drive):
        assert "0 pending" in idle and "done" in idle, idle


#: a line of upload totals as ``cloudfs status --watch`` shows it
WATCHED_TOTALS = re.compile(r"uploads: \d+ pending.*, \d+ done")


def watch_output(drive: Drive, *, timeout: float = 30.0) -> tuple[str, str]:
    """What ``cloudfs status --watch`` shows in a pipe, and on a terminal,
    until its first line of upload totals (a slow start under load is no
    failure; showing nothing for ``timeout`` seconds is)."""
    import pty

    shown = []
    for terminal in (False, True):
        out = ""
        primary, secondary = pty.openpty() if terminal else os.pipe()
        proc = subprocess.Popen([*CLOUDFS, "status", str(drive.path), "--watch"], stdout=secondary,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, COLUMNS="200", TERM="xterm"))
        os.close(secondary)
        try:
            deadline = time.monotonic() + timeout
            os.set_blocking(primary, False)
            while time.monotonic() < deadline and not WATCHED_TOTALS.search(out):
                try:
                    out += os.read(primary, 65536).decode(errors="replace")
                except BlockingIOError:
                    time.sleep(0.05)
                except OSError:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            os.close(primary)
        shown.append(out)
    return shown[0], shown[1]


@pytest.mark.v4_only("dialect-neutral (umount's report)")
def test_cli_umount_says_what_stays_pending_when_the_server_is_gone(tmp_path: Path):
    # (a full drive: tests/mount/test_faults.py)
    from cloudfs.server.testing import start_server

    server = start_server(tmp_path / "server", faults=False)
    d = Drive(server, tmp_path / "mnt", tmp_path / "cache", options="upload_delay=60")
    try:
        d.mount()
        (d / "unsent.txt").write_text("kept locally\n")
        server.stop()
        result = run_cloudfs("umount", "--quiet", str(d.path), timeout=300)
        d.mounted = False
        assert result.returncode == 1, result.stderr
        assert "1 upload(s) could not finish" in result.stderr and "/unsent.txt" in result.stderr
        assert str(tmp_path / "cache" / "staging") in result.stderr
        assert not is_mounted(d.path)
    finally:
        force_unmount(d.path)
        server.stop()


def test_cli_status_of_an_unreachable_server_keeps_the_mount(drive: Drive):
    # regression: a capacity request cut off by status's own time limit left
    # its answer unset; the error escaped the control handler and ended the mount
    drive.server.faults.set(path_regex="/user/(capacity|storage)$", latency_s=8)  # v4, v3
    try:
        status = json.loads(run_cloudfs("status", str(drive.path), "--json", check=True).stdout)[0]
    finally:
        drive.server.faults.clear()
    assert status["reachable"] is False and status["capacity"] is None
    assert is_mounted(drive.path)
    (drive / "still-here.txt").write_text("the mount survived\n")
    assert (drive / "still-here.txt").read_text() == "the mount survived\n"


def test_cli_config_remote_and_fstab_helper(server: RunningServer, tmp_path: Path):
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "cloudfs" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    mnt = tmp_path / "work"
    mnt.mkdir()
    config.write_text(f'[remotes.work]\nurl = "{server.url}"\nuser = "{server.email}"\n'
                      f'mountpoint = "{mnt}"\ncache_dir = "{tmp_path / "cache"}"\nmetadata_ttl = 5\n')
    try:
        run_cloudfs("mount", "work", password=server.password, check=True)
        assert is_mounted(mnt)
        # regression: umount took the remote's name for a directory in the current one
        run_cloudfs("umount", "work", check=True)
        assert not is_mounted(mnt)
        # regression: a mountpoint after an option was refused as an unrecognized argument
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        run_cloudfs("mount", "work", "-o", "ro", str(elsewhere), password=server.password, check=True)
        try:
            assert is_mounted(elsewhere) and not is_mounted(mnt)
            with pytest.raises(OSError):
                (elsewhere / "read-only.txt").write_text("x")
        finally:
            run_cloudfs("umount", str(elsewhere), check=True)
        # as mount(8) would run it for an fstab line
        helper = Path(sys.executable).with_name("mount.cloudfs")
        env = dict(os.environ, CLOUDFS_PASSWORD=server.password)
        subprocess.run([str(helper), server.url, str(mnt), "-o",
                        f"user={server.email},_netdev,noauto,x-systemd.automount,cache_dir={tmp_path / 'cache'}"],
                       env=env, check=True, timeout=60, capture_output=True)
        assert is_mounted(mnt)
        run_cloudfs("umount", str(mnt), check=True)
        config.write_text('[remotes.work]\nurl = "x"\nbogus = 1\n')
        result = run_cloudfs("mount", "work")
        assert result.returncode != 0 and "bogus" in result.stderr and str(config) in result.stderr
    finally:
        config.unlink(missing_ok=True)
        force_unmount(mnt)


@pytest.mark.v4_only("dialect-neutral: how login reads a configured remote")
def test_cli_login_of_a_remote_uses_its_password_file(server: RunningServer, tmp_path: Path):
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "cloudfs" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "work.password"
    secret.write_text(server.password + "\n")
    secret.chmod(0o600)
    config.write_text(f'[remotes.work]\nurl = "{server.url}"\nuser = "{server.email}"\n'
                      f'password_file = "{secret}"\n')
    try:
        # regression: login NAME ignored the remote's password_file and asked for a password
        result = run_cloudfs("login", "work", password=None)
        assert result.returncode == 0 and "logged in" in result.stdout, result.stderr
        # a password given on the command line still wins over the configured file
        wrong = one_line(run_cloudfs("login", "work", "--password-stdin", input="wrong-password\n", password=None))
        assert "password" in wrong.lower()
    finally:
        run_cloudfs("logout", "work")
        config.unlink(missing_ok=True)


def test_cli_trash_shows_and_empties_the_recycle_bin(fresh_server: RunningServer, tmp_path: Path):
    # a full drive had no way out: deleted files sit in the recycle bin and still count
    server = fresh_server
    remote = Remote(server)
    remote.put_many({"/bin-a": b"a" * 300_000, "/bin-b": b"b" * 200_000})
    remote.mkdir("/bin-folder")
    remote.put("/bin-folder/inside", b"c" * 100_000)
    remote._run(lambda client: client.delete(["/bin-a", "/bin-b", "/bin-folder"]))  # to the trash, as rm does
    used_before = remote.used()

    def trash(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run_cloudfs("trash", server.url, "--user", server.email, *args, password=server.password,
                           **kwargs)  # type: ignore[arg-type]

    shown = trash("--json", check=True)
    if server.dialect == "v3":
        assert "no recycle bin" in trash(check=True).stdout  # deletes are permanent there
        assert used_before == 0
        return
    figures = json.loads(shown.stdout)
    assert figures["items"] == 3 and figures["size"] == 500_000 and figures["used"] == used_before >= 600_000
    assert "--empty" in trash(check=True).stdout  # says how to free the space
    # deleting for good is never done without a yes (regression: --json skipped the check
    # and asked on a closed standard input)
    assert "--yes" in one_line(trash("--empty"))
    assert "--yes" in one_line(trash("--empty", "--json"))
    assert remote.used() == used_before
    result = trash("--empty", "--yes", check=True)
    assert "3 items" in result.stdout and "freed" in result.stdout
    assert remote.used() == 0
    assert json.loads(trash("--json", check=True).stdout)["items"] == 0
    # no login stored and no password: one clear line
    assert "cloudfs login" in one_line(run_cloudfs("trash", server.url, "--user", server.email))


@pytest.mark.v4_only("the demo starts a server of its own")
def test_cli_demo_ctrl_c_stops_the_server_after_the_uploads(tmp_path: Path):
    # regression: the terminal's Ctrl-C reached the bundled server too, which
    # died before the mount could upload what was pending
    import signal

    from cloudfs.server.testing import start_server
    from tests.mount.conftest import Remote

    mnt, data = tmp_path / "demo", tmp_path / "server"
    demo = subprocess.Popen([*CLOUDFS, "demo", str(mnt), "--data", str(data)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            start_new_session=True)  # a process group of its own, as a terminal gives it
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "Press Ctrl-C" in line:
                break
        payload = os.urandom(3 << 20)
        (mnt / "written-before-ctrl-c.bin").write_bytes(payload)  # uploads after the default 2 s delay
        os.killpg(demo.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole foreground group
        out, err = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        force_unmount(mnt)
    assert not is_mounted(mnt)
    with start_server(data, faults=False) as server:
        assert Remote(server).get("/written-before-ctrl-c.bin") == payload, err
    assert demo.returncode == 0 and "the server is stopped" in out, err


@pytest.mark.v4_only("dialect-neutral (output)")
def test_cli_output_into_a_closed_pipe_is_quiet(drive: Drive):
    # `cloudfs status | head` where head is gone before status writes: no traceback
    proc = subprocess.Popen([*CLOUDFS, "status", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the command has started and written
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
