"""The kernel's caches, from outside a request: pyfuse3's invalidation calls
(``invalidate_entry`` for a name, ``invalidate_inode`` for attributes and
cached pages), which :mod:`changes` asks for (its :class:`~cloudfs.fs.changes.Kernel`).

They block on the kernel and must not run inside a request handler: they
are queued and made from a worker thread.  An adapter beside ``ops.py``:
the only other fs module that touches pyfuse3.
"""

from __future__ import annotations

import errno
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import pyfuse3
import trio

log = logging.getLogger(__name__)

KernelCall = tuple[Callable[..., Any], tuple[Any, ...]]


class KernelInvalidator:
    """Queue of pyfuse3 invalidations, made in a worker thread (they block on the kernel).

    :meth:`close` must come before ``pyfuse3.close()``: a call made on a closed
    FUSE session would touch freed memory."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[KernelCall](math.inf)
        self.made = 0
        # held by the worker thread around each call; close() takes it to end the calls
        self._session_lock = threading.Lock()
        self._closed = False

    def close(self, wait_s: float = 2.0) -> None:
        """No call after this returns (unless one stayed blocked in the kernel for ``wait_s``)."""
        acquired = self._session_lock.acquire(timeout=wait_s)
        self._closed = True
        if acquired:
            self._session_lock.release()

    def entry(self, parent_ino: int, name: str, deleted: int = 0) -> None:
        self._send.send_nowait((pyfuse3.invalidate_entry, (parent_ino, name.encode("utf-8", "surrogateescape"),
                                                           deleted)))

    def inode(self, ino: int, attr_only: bool = False) -> None:
        self._send.send_nowait((pyfuse3.invalidate_inode, (ino, attr_only)))

    async def run(self) -> None:
        async for first in self._receive:
            calls = [first]
            while True:  # one thread hop for everything queued
                try:
                    calls.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await trio.to_thread.run_sync(self._make_calls, calls, abandon_on_cancel=True)
            self.made += len(calls)

    def _make_calls(self, calls: list[KernelCall]) -> None:  # in the worker thread
        for fn, args in calls:
            with self._session_lock:
                if self._closed:
                    return
                try:
                    fn(*args)
                except OSError as exc:
                    # ENOENT: the kernel no longer knows that inode or name: nothing to drop
                    if exc.errno != errno.ENOENT:
                        log.debug("kernel invalidation %s%r failed: %s", fn.__name__, args, exc)
                except Exception:  # never let one call end the worker (the TTLs still hold)
                    log.exception("kernel invalidation %s%r failed", fn.__name__, args)
