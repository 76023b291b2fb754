"""What a running mount is waiting on: on SIGUSR1 the mount logs every trio
task with the chain of awaits it is parked in.

A mount that stops answering is otherwise a black box (its syscalls just
hang); ``kill -USR1 <pid>`` and the log tell which lock, event or request
each FUSE handler and upload is stuck on.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import trio

from cloudfs.fs.ops import IN_FLIGHT, brief_args

log = logging.getLogger(__name__)


def format_task_tree() -> str:
    """Every task below the root, indented by nursery, each with its await chain."""
    lines: list[str] = []

    def walk(task: trio.lowlevel.Task, depth: int) -> None:
        lines.append(f"{'  ' * depth}task {task.name}")
        for where in _await_chain(task.coro):
            lines.append(f"{'  ' * depth}    {where}")
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child, depth + 1)

    root = trio.lowlevel.current_root_task()
    if root is not None:  # None only outside trio.run, where this is never called
        walk(root, 0)
    # pyfuse3's workers are compiled coroutines whose awaits cannot be
    # followed: the handlers they run are listed from @fuse_op's record
    now = time.monotonic()
    for task, running in list(IN_FLIGHT.items()):
        lines.append(f"handler {running.name}{brief_args(running.args)} in {task.name}, "
                     f"running for {now - running.started:.1f} s")
        lines.extend(f"    {where}" for where in _await_chain(running.coro))
    return "\n".join(lines)


def _await_chain(coro: Any) -> Iterator[str]:
    """Like ``Task.iter_await_frames``, but it also steps through compiled
    (Cython) coroutines, which have no frame: pyfuse3's workers are such, and
    the handler each one runs is what matters."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            yield f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        else:
            yield f"<{type(coro).__name__} {getattr(coro, '__qualname__', '?')}>"
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None))


async def dump_tasks_on_signal(describe: Callable[[], str] = lambda: "") -> None:
    """Runs for the life of the mount; ``describe`` adds the mount's own state."""
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        async for _ in signals:
            log.warning("task dump (SIGUSR1):\n%s\n%s", format_task_tree(), describe())
