"""A change-feed reader for the server tests: raw bytes and parsed frames of ``GET /file/events``."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any

import httpx

from cloudfs.server.testing import RunningServer

from .helpers import API


class Feed:
    """One open ``/file/events`` stream read by a thread; frames queue up as (name, data)."""

    def __init__(self, server: RunningServer, token: str | None, client_id: str | None = None,
                 uri: str = "cloudreve://my") -> None:
        self.client_id = client_id or str(uuid.uuid4())
        self.raw = bytearray()
        self.frames: queue.Queue[tuple[str, str]] = queue.Queue()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._http = httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0, read=None))
        headers = {"X-Cr-Client-Id": self.client_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._thread = threading.Thread(target=self._read, args=(uri, headers), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "no answer to GET /file/events"

    def _read(self, uri: str, headers: dict[str, str]) -> None:
        try:
            with self._http.stream("GET", API + "/file/events", params={"uri": uri}, headers=headers) as resp:
                self.status = resp.status_code
                self.headers = dict(resp.headers)
                self._ready.set()
                pending = b""
                for chunk in resp.iter_raw():
                    self.raw += chunk
                    pending += chunk
                    while b"\n\n" in pending:
                        frame, pending = pending.split(b"\n\n", 1)
                        fields = dict(line.split(b":", 1) for line in frame.split(b"\n"))
                        self.frames.put((fields[b"event"].decode(), fields[b"data"].decode()))
                    if self._stop.is_set():
                        return
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self._ready.set()

    def next(self, timeout: float = 5.0, skip_keepalive: bool = True) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            name, data = self.frames.get(timeout=left)
            if not (skip_keepalive and name == "keep-alive"):
                return name, data

    def events(self, window: float, first_timeout: float = 5.0) -> list[dict[str, Any]]:
        """The ``event`` frames that arrive until ``window`` s pass without one (waiting up to
        ``first_timeout`` for the first)."""
        out: list[dict[str, Any]] = []
        timeout = first_timeout
        while True:
            try:
                name, data = self.next(timeout)
            except (TimeoutError, queue.Empty):
                return out
            if name == "event":
                out.append(json.loads(data))
            timeout = window

    def close(self) -> None:
        self._stop.set()
        self._http.close()
        self._thread.join(5)

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
