"""Spare staging files: empty files made ahead of need, in a worker thread.

Making a file costs the cache disk's filesystem a new inode and directory
entry under its journal, which our own close-time syncs keep committing: on
a busy ext4, 0.3-0.4 ms on average (a long tail of waits), that every
``create(2)`` through the mount waited for on the event loop (rsync's and
tar's files are each a create).  Here they are made in batches, off the
loop, before they are needed; a new file's staging file is then one taken
from the batch and opened (an open of an existing file is a few
microseconds), and made on the spot only when none is left (or none was
ever made: a mount driven without :meth:`SpareFiles.run`).  They are kept
closed: the mount holds no descriptors for them.

They live in a folder of their own, so what a killed run left there unused
is known by where it is: the next start removes those, except the ones the
journal holds (taken, written and journaled before the kill).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Collection
from pathlib import Path

import trio

log = logging.getLogger(__name__)

#: where they wait, in the staging folder
SPARES_FOLDER = "spare"
#: spares kept ready; a burst of creates takes them, and they are made again
#: once fewer than half are left (one worker-thread trip for the lot)
KEEP = 64
#: after the cache disk refused to make any, try again this much later
RETRY_S = 5.0


def make_file(folder: Path) -> Path:
    """A new, empty staging file in ``folder``."""
    path = folder / uuid.uuid4().hex
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    return path


class SpareFiles:
    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self._ready: list[Path] = []
        self._wanted = trio.Event()
        self._closed = False

    def take(self) -> Path | None:
        """A spare (now the caller's), or None if none is ready."""
        if not self._ready:
            self._wanted.set()
            return None
        spare = self._ready.pop()
        if len(self._ready) <= self.keep // 2:
            self._wanted.set()
        return spare

    def ready(self) -> list[Path]:
        """The spares made and not taken yet."""
        return list(self._ready)

    async def run(self, journaled: Collection[Path] = (), *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Remove what an earlier run left unused (not ``journaled``), then keep
        spares ready until cancelled."""
        await trio.to_thread.run_sync(self._prepare, {Path(p) for p in journaled})
        task_status.started()
        if self.keep <= 0:
            return  # (a read-only mount makes no file)
        try:
            while True:
                self._wanted = trio.Event()  # (takes from here on set it)
                if len(self._ready) > self.keep // 2:
                    await self._wanted.wait()
                    continue
                try:
                    made = await trio.to_thread.run_sync(self._make, self.keep - len(self._ready))
                except OSError as exc:
                    # a full or broken cache disk: new files are made on the
                    # spot (and fail there, as they did before spares)
                    log.warning("could not make spare staging files: %s", exc)
                    made = []
                if self._closed:
                    self._discard(made)
                    return
                self._ready.extend(made)
                if not made:
                    await trio.sleep(RETRY_S)
        finally:
            self.close()

    def close(self) -> None:
        """Remove the spares not taken."""
        self._closed = True
        ready, self._ready = self._ready, []
        self._discard(ready)

    def _prepare(self, journaled: set[Path]) -> None:  # in a worker thread
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if path not in journaled:
                path.unlink(missing_ok=True)

    def _make(self, count: int) -> list[Path]:  # in a worker thread
        made: list[Path] = []
        try:
            for _ in range(count):
                made.append(make_file(self.folder))
        except OSError:
            if not made:
                raise
        return made

    @staticmethod
    def _discard(spares: list[Path]) -> None:
        for path in spares:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.debug("could not remove the spare staging file %s: %s", path, exc)
