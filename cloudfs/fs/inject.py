"""TEST-ONLY failure injection below the FUSE handlers.

With ``CLOUDFS_INJECT_FAILURES="<rate>:<seed>"`` in a mount's environment,
every call that a FUSE handler makes into the layers below it (core,
content, namespace, client, write-back, block store, fetcher, inode table,
metadata cache) fails with probability ``rate``, raising one of
``OSError(EIO)``, ``OSError(ENOSPC)``, ``RuntimeError``, ``KeyError`` or
``CloudfsError``.  ``tests/mount/test_hardening.py`` uses it to prove that no
handler can take the daemon down, whatever goes wrong underneath.

Only calls made by a handler's own task fail: background work (uploads,
read-ahead, the control socket) runs untouched, so what is tested is the
handlers' error boundary.  And only calls from one layer into another fail
(a layer's calls to its own methods run untouched): a layer's API may fail
as a whole, but failing its bookkeeping halfway models no real fault, only
a bug in that layer.  Unset (always, outside tests) nothing is wrapped
and this module costs nothing.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import inspect
import logging
import os
import random
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pyfuse3
import trio

from cloudfs.errors import CloudfsError

log = logging.getLogger(__name__)

ENV = "CLOUDFS_INJECT_FAILURES"

#: the task of the FUSE handler running in this context (injection happens only there)
_handler_task: contextvars.ContextVar[object] = contextvars.ContextVar("cloudfs_handler_task", default=None)


class _Injector:
    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.injected = 0

    def maybe_fail(self, where: str, owner: object, caller: FrameType | None) -> None:
        if _handler_task.get() is not trio.lowlevel.current_task():
            return
        if caller is not None and caller.f_locals.get("self") is owner:
            return  # a layer's call to itself: its internals are not a boundary
        if self.rng.random() >= self.rate:
            return
        self.injected += 1
        kind = self.rng.randrange(5)
        text = f"injected failure in {where}"
        if kind == 0:
            raise OSError(errno.EIO, text)
        if kind == 1:
            raise OSError(errno.ENOSPC, text)
        if kind == 2:
            raise RuntimeError(text)
        if kind == 3:
            raise KeyError(text)
        raise CloudfsError(text)

    def wrap_object(self, obj: object) -> None:
        for name, attr in inspect.getmembers(type(obj), inspect.isfunction):
            if name.startswith("__"):
                continue
            bound = getattr(obj, name)
            where = f"{type(obj).__name__}.{name}"
            try:
                setattr(obj, name, self._wrap(obj, bound, where, inspect.iscoroutinefunction(attr)))
            except (AttributeError, TypeError):
                pass  # slots or read-only: left alone

    def _wrap(self, owner: object, fn: Callable[..., Any], where: str, is_async: bool) -> Callable[..., Any]:
        if is_async:
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                self.maybe_fail(where, owner, sys._getframe(1))
                return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.maybe_fail(where, owner, sys._getframe(1))
            return fn(*args, **kwargs)

        return wrapper

    def mark_handlers(self, ops: pyfuse3.Operations) -> None:
        """Each FUSE handler records its task, so calls below it may fail."""
        for name in dir(pyfuse3.Operations):
            handler = getattr(ops, name, None)
            if name.startswith("_") or not inspect.iscoroutinefunction(handler):
                continue

            def marked(handler: Callable[..., Any] = handler) -> Callable[..., Any]:
                @functools.wraps(handler)
                async def run(*args: Any) -> Any:
                    token = _handler_task.set(trio.lowlevel.current_task())
                    try:
                        return await handler(*args)
                    finally:
                        _handler_task.reset(token)

                return run

            setattr(ops, name, marked())


def install_from_env(ops: Any) -> None:
    """Arm the injection on a mount's Operations if the environment asks for it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    rate_text, _, seed_text = spec.partition(":")
    injector = _Injector(float(rate_text), int(seed_text or 0))
    core = ops.core
    for target in (core, ops.content, ops.namespace, core.client, core.writeback, core.fetcher,
                   core.fetcher.store, core.table, core.meta):
        injector.wrap_object(target)
    injector.mark_handlers(ops)
    log.warning("TEST-ONLY failure injection is on (%s=%s): internal calls of FUSE handlers fail at random",
                ENV, spec)
