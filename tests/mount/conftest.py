"""Real mounts: ``cloudfs mount`` through /dev/fuse against ``cloudfs server``.

* ``dialect``: every test that uses a server runs against a Cloudreve 4
  (``v4``) and a Cloudreve 3 (``v3``) server: ``server`` and ``fresh_server``
  (overriding tests/conftest.py's) follow this module-scoped parameter.  A
  test marked ``@pytest.mark.v4_only("why")`` (or a module with
  ``pytestmark = pytest.mark.v4_only(...)``) is skipped on v3 with that reason.
* ``drive``: one mount per test module, on the module's ``server``.
* ``mounted(server, base)``: a mount for a with-block (fixtures of modules that need their own).
* ``remote``: reads and writes the server over HTTP with the real client,
  independently of the mount, to check what actually landed.

Every mount is a ``cloudfs mount`` subprocess started exactly as a user
would (it returns once the mount is ready); teardown is ``cloudfs umount``,
with a lazy unmount as a last resort so a failed test never leaves a mount.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from cloudfs.cli.logs import mount_log_file
from cloudfs.client.api import CloudreveClient
from cloudfs.client.models import Entry
from cloudfs.server.testing import RunningServer
from tests.dialects import *  # noqa: F403 (both dialects: dialect, server, fresh_server, v4_only)

CLOUDFS = [sys.executable, "-m", "cloudfs"]
#: fast settings so tests do not wait for the production quiet delay
TEST_OPTIONS = "upload_delay=0.2,delete=permanent"

if not os.access("/dev/fuse", os.R_OK | os.W_OK):  # pragma: no cover
    pytest.skip("needs /dev/fuse", allow_module_level=True)


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Token store, caches, config and control sockets of mounts started by
    tests live in a temporary home of their own."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                                             "XDG_RUNTIME_DIR")}
    for key, sub in (("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_RUNTIME_DIR", "run")):
        (base / sub).mkdir(mode=0o700)
        os.environ[key] = str(base / sub)
    yield base
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run_cloudfs(*args: str, password: str | None = None, timeout: float = 120, check: bool = False,
                input: str | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``cloudfs ARGS`` with ``CLOUDFS_PASSWORD=password`` (if given) and
    ``input`` on standard input (else nothing: no terminal, as in a script)."""
    env = dict(os.environ)
    env.pop("CLOUDFS_PASSWORD", None)
    if password is not None:
        env["CLOUDFS_PASSWORD"] = password
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run([*CLOUDFS, *args], env=env, capture_output=True, text=True, timeout=timeout,
                            **stdin, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(f"cloudfs {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass
class Drive:
    server: RunningServer
    path: Path
    cache_dir: Path
    options: str = TEST_OPTIONS
    #: more ``cloudfs mount`` arguments; CLOUDFS_TEST_MOUNT_ARGS="-vv" debugs a failing test
    extra: tuple[str, ...] = field(default_factory=lambda: tuple(os.environ.get("CLOUDFS_TEST_MOUNT_ARGS", "").split()))
    mounted: bool = field(default=False, init=False)

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        run_cloudfs("mount", self.server.url, str(self.path), "--user", self.server.email,
                    "--cache-dir", str(self.cache_dir), "-o", self.options, *self.extra,
                    password=self.server.password, check=True)
        self.mounted = True

    def umount(self) -> None:
        if not self.mounted:
            return
        self.mounted = False
        result = run_cloudfs("umount", "--quiet", str(self.path), timeout=300)
        if result.returncode != 0:
            force_unmount(self.path)
            raise AssertionError(f"cloudfs umount failed: {result.stderr}\n--- mount log ---\n{self.log()[-6000:]}")

    def remount(self) -> None:
        self.umount()
        self.mount()

    def log(self) -> str:
        path = mount_log_file(self.path)
        return path.read_text() if path.exists() else ""

    def pid(self) -> int:
        out = run_cloudfs("status", str(self.path), "--json", check=True)
        return int(json.loads(out.stdout)[0]["pid"])

    def kill_hung(self, pid: int) -> str:
        """End a mount whose syscalls hang: returns its task dump (SIGUSR1),
        then kills it, so that the syscalls waiting on it return."""
        os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        log = self.log()
        os.kill(pid, signal.SIGKILL)
        force_unmount(self.path)
        self.mounted = False
        return log[log.rfind("task dump"):]

    def __truediv__(self, other: str) -> Path:
        return self.path / other


def force_unmount(path: Path) -> None:
    subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def drive(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    base = tmp_path_factory.mktemp("drive")
    d = Drive(server, base / "mnt", base / "cache")
    d.mount()
    try:
        yield d
    finally:
        d.umount()


@contextmanager
def mounted(server: RunningServer, base: Path, options: str = TEST_OPTIONS) -> Iterator[Drive]:
    """A drive mounted at ``base/mnt`` for the block; unmounted after it
    (``cloudfs umount``, then a lazy unmount as a last resort)."""
    d = Drive(server, base / "mnt", base / "cache", options=options)
    d.mount()
    try:
        yield d
    finally:
        try:
            d.umount()
        finally:
            force_unmount(d.path)


class Remote:
    """Synchronous access to the server through the real client, for setting
    up and checking what the mount should show or has written."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    def _run(self, fn):  # type: ignore[no-untyped-def]
        async def main():  # type: ignore[no-untyped-def]
            client = await CloudreveClient.connect(self.server.url, email=self.server.email,
                                                   password=self.server.password)
            async with client:
                return await fn(client)

        return trio.run(main)

    def put(self, path: str, data: bytes) -> Entry:
        return self.put_many({path: data})[path]

    def put_many(self, files: dict[str, bytes]) -> dict[str, Entry]:
        async def upload(client: CloudreveClient) -> dict[str, Entry]:
            out: dict[str, Entry] = {}
            scratch = Path(os.environ["XDG_CACHE_HOME"]) / "remote-upload"
            scratch.mkdir(exist_ok=True)
            for i, (path, data) in enumerate(files.items()):
                source = scratch / str(i)
                source.write_bytes(data)
                try:
                    existing = await client.stat(path)
                except Exception:
                    existing = None
                out[path] = await client.upload(path, source, replace=existing)
                source.unlink()
            return out

        return self._run(upload)

    def get(self, path: str) -> bytes:
        async def download(client: CloudreveClient) -> bytes:
            entry = await client.stat(path)
            return await client.read(entry, 0, entry.size) if entry.size else b""

        return self._run(download)

    def stat(self, path: str) -> Entry:
        return self._run(lambda client: client.stat(path))

    def used(self) -> int:
        """Bytes the account uses on the server (hidden files included)."""
        return int(self._run(lambda client: client.capacity()).used)

    def delete(self, path: str) -> None:
        self._run(lambda client: client.delete([path], permanent=True))

    def exists(self, path: str) -> bool:
        async def check(client: CloudreveClient) -> bool:
            try:
                await client.stat(path)
            except Exception:
                return False
            return True

        return self._run(check)

    def names(self, path: str) -> list[str]:
        async def names(client: CloudreveClient) -> list[str]:
            _, children = await client.list_all(path)
            return sorted(c.name for c in children)

        return self._run(names)

    def mkdir(self, path: str) -> Entry:
        return self._run(lambda client: client.mkdir(path))


@pytest.fixture
def remote(server: RunningServer) -> Remote:
    return Remote(server)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def synced(path: Path) -> None:
    """fsync: returns once the content is on the server."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
