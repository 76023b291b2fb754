"""Run the bundled server for tests: as a subprocess (:func:`start_server`) or
in-process from trio code (:func:`cloudfs.server.serve`).

``start_server`` launches ``python -m cloudfs.server`` (the ``cloudfs server``
command without the rest of the CLI), reads the ``listening on <url>`` line,
waits until ``/api/<dialect>/site/ping`` answers (``dialect="v3"`` or
``--dialect v3`` in ``extra_args`` serves Cloudreve 3.8.3's API), and returns a
:class:`RunningServer`; if the process dies first it raises with the
server's stderr.  :class:`FaultControl` drives ``/_cloudfs/faults`` over HTTP
(synchronous, so it works from sync and trio tests alike: every call is a
quick local request).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

DEFAULT_USER = "demo@cloudfs.local"
DEFAULT_PASSWORD = "cloudfs-demo"
_URL_RE = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 30.0
#: the API prefix of dialects not served under /api/<dialect>
API_PREFIX = {"koodrive": "/koodrive/ose/v1"}


def _request(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    return json.loads(raw) if raw else None


class FaultControl:
    """Client of the fault-injection control channel of one server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._endpoint = base_url + "/_cloudfs/faults"

    def set(self, *, latency_s: float = 0.0, error_rate: float = 0.0, error_status: int = 500,
            drop_rate: float = 0.0, drop_after_bytes: int = 0, path_regex: str | None = None,
            count: int | None = None, seed: int | None = None, drop_target: str = "auto",
            garble_rate: float = 0.0, reply_delay_s: float = 0.0) -> None:
        """Replace the fault rule (see :mod:`cloudfs.server.faults`)."""
        _request("POST", self._endpoint, {
            "latency_s": latency_s, "error_rate": error_rate, "error_status": error_status,
            "drop_rate": drop_rate, "drop_after_bytes": drop_after_bytes, "drop_target": drop_target,
            "garble_rate": garble_rate, "reply_delay_s": reply_delay_s,
            "path_regex": path_regex, "count": count, "seed": seed})

    def expire_tokens(self) -> None:
        """Every access token issued so far now counts as expired (v3: every login session ends)."""
        _request("POST", self._endpoint + "/expire-tokens", {})

    def set_capacity(self, total_bytes: int | None) -> None:
        """Override the quota total (None restores the configured capacity)."""
        _request("POST", self._endpoint + "/capacity", {"total": total_bytes})

    def clear(self) -> None:
        """Remove the rule, the capacity override, a forced token expiry; reset counters."""
        _request("DELETE", self._endpoint)

    def state(self) -> dict[str, Any]:
        return dict(_request("GET", self._endpoint))

    def stats(self) -> dict[str, int]:
        """Counters of injected faults: matched, latency, error, drop_request,
        drop_response, garble, reply_delay, token_expiry, capacity (all present, 0 when none)."""
        return dict(self.state()["stats"])


class RunningServer:
    """A server subprocess; also a context manager (stops on exit)."""

    url: str
    data_dir: Path
    email: str
    password: str
    faults: FaultControl
    #: "v4" or "v3": which API the server speaks (``api`` is its prefix)
    dialect: str
    api: str

    def __init__(self, data_dir: Path, argv: list[str], email: str, password: str, port: int,
                 *, own_session: bool = False) -> None:
        self.data_dir = data_dir
        self._own_session = own_session
        self.email = email
        self.password = password
        self.dialect = _dialect_of(argv)
        self.api = API_PREFIX.get(self.dialect, f"/api/{self.dialect}")
        self._argv = argv
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr_lines: list[str] = []
        self.url = ""
        self._start()
        self.faults = FaultControl(self.url)

    # --- lifecycle -----------------------------------------------------------------
    def _start(self) -> None:
        cmd = [sys.executable, "-m", "cloudfs.server", *self._argv, "--port", str(self._port)]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                      start_new_session=self._own_session)
        self._stderr_lines = []
        self._threads = [threading.Thread(target=self._pump_stderr, args=(self._proc,), daemon=True)]
        self._threads[0].start()
        url = self._read_url(self._proc)
        self.url = url
        self._port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                ping = "/_cloudfs/ping" if self.dialect == "koodrive" else self.api + "/site/ping"
                if _request("GET", url + ping, timeout=2.0)["code"] == 0:
                    break
            except (OSError, RuntimeError, ValueError):
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("server did not answer /site/ping")
            time.sleep(0.05)

    def _pump_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self._stderr_lines.append(text)
            if os.environ.get("CLOUDFS_SERVER_STDERR"):
                print(f"[server] {text}", file=sys.stderr)

    def _read_url(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        result: list[str] = []

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                match = _URL_RE.search(line.decode(errors="replace"))
                if match and not result:
                    result.append(match.group(1))
            # keep draining stdout so the child never blocks on a full pipe

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + START_TIMEOUT
        while not result:
            if proc.poll() is not None or time.monotonic() > deadline:
                thread.join(timeout=1.0)
                if result:
                    break
                self._fail("server did not print its URL")
            time.sleep(0.02)
        return result[0]

    def _reap(self) -> None:
        """After the process exited: let the pipe readers finish, close the pipes."""
        proc = self._proc
        if proc is None:
            return
        for thread in self._threads:
            thread.join(timeout=5.0)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def _fail(self, why: str) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._reap()
        raise RuntimeError(f"{why}; server stderr:\n" + "\n".join(self._stderr_lines[-50:]))

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stderr(self) -> str:
        return "\n".join(self._stderr_lines)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), waiting for the process to exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is not None:
            self._reap()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL, no cleanup: simulates a crash."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        self._reap()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or kill) and start again on the same port and data directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def start(self) -> None:
        """Start again after :meth:`stop` or :meth:`kill`, on the same port and data directory."""
        last: Exception | None = None
        for _ in range(50):  # the port may linger briefly after a kill
            try:
                self._start()
                return
            except RuntimeError as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"restart failed: {last}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _dialect_of(argv: Sequence[str]) -> str:
    """The last ``--dialect X`` / ``--dialect=X`` of a command line (argparse's rule)."""
    dialect = "v4"
    for i, arg in enumerate(argv):
        if arg == "--dialect" and i + 1 < len(argv):
            dialect = argv[i + 1]
        elif arg.startswith("--dialect="):
            dialect = arg.split("=", 1)[1]
    return dialect


def start_server(data_dir: str | os.PathLike[str] | None, *, user: str = DEFAULT_USER,
                 password: str = DEFAULT_PASSWORD, capacity: int | None = None, faults: bool = True,
                 chunk_size: int | None = None, access_ttl: float | None = None,
                 extra_args: Sequence[str] = (), port: int = 0, dialect: str | None = None,
                 own_session: bool = False) -> RunningServer:
    """Start ``cloudfs server`` on 127.0.0.1 serving ``data_dir`` (a temp dir if None).

    ``own_session``: out of the terminal's process group, so a Ctrl-C there
    does not stop it; only :meth:`RunningServer.stop` does (the demo stops it
    after the mount's last uploads reached it).

    ``dialect`` "v3" serves Cloudreve 3.8.3's ``/api/v3`` (same as ``--dialect v3``
    in ``extra_args``); ``access_ttl`` only matters to v4 (v3 uses cookie sessions)."""
    path = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="cloudfs-server-"))
    argv = ["--host", "127.0.0.1", "--data", str(path), "--user", user, "--password", password]
    if capacity is not None:
        argv += ["--capacity", str(int(capacity))]
    if chunk_size is not None:
        argv += ["--chunk-size", str(int(chunk_size))]
    if access_ttl is not None:
        argv += ["--access-ttl", str(access_ttl)]
    if faults:
        argv.append("--faults")
    if dialect is not None:
        argv += ["--dialect", dialect]
    argv += list(extra_args)
    return RunningServer(path, argv, user, password, port, own_session=own_session)
