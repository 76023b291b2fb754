"""Replacing a file where the backend cannot overwrite in place
(``capabilities.overwrite_in_place`` False): the new content is uploaded
beside the file under a temporary name (by the backend's upload), then
swapped in here: check the file at the target is still the one the new
content was based on, delete it, rename the upload into place.

A failed upload leaves the old content intact; the swap itself is not
atomic (between the delete and the rename the name is free), and the
replaced file ends up with the upload's id (``replace_gives_new_id``).
A backend provides the steps (:class:`SwapSteps`); the order, the conflict
rule and what happens to an upload stranded by a failed swap are the same
for all of them.

Stranded uploads: a swap that fails (or is cancelled, or whose answers are
lost) once the upload is complete may leave the new content whole at its
temporary name: hidden from listings, but counted against the quota.  Every
such upload is remembered under its target (several per target: each
failed attempt has its own temporary name) and, once a later swap put newer
content at the target, deleted if it is still at a temporary name in the
target's folder (the backend's :meth:`SwapSteps.drop_if_beside`, for all of
a target's at once): one whose rename did happen after all, or that someone
moved, is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from typing import Protocol

from cachetools import LRUCache

from cloudfs.client.models import Entry
from cloudfs.client.paths import split
from cloudfs.errors import CloudfsError, NotFound

log = logging.getLogger(__name__)


class SwapSteps(Protocol):
    """What a backend does for each step of a swap (its own requests)."""

    async def swap_sides(self, uploaded: str, target: str) -> tuple[Entry | None, Entry | None]:
        """The uploaded file at ``uploaded`` and the file now at ``target``
        (each None if not there), as the server shows them now."""
        ...

    async def drop_upload(self, uploaded: Entry, *, what: str) -> None:
        """Delete our uploaded content for good (it will never be placed)."""
        ...

    async def retire(self, current: Entry, target: str) -> None:
        """Delete the old file at ``target`` (to the trash where there is one)."""
        ...

    async def rename_into_place(self, uploaded: Entry, name: str) -> Entry:
        """Rename the uploaded file to ``name`` in its folder; the renamed file."""
        ...

    async def drop_if_beside(self, file_ids: Set[str], target: str) -> int:
        """Delete for good those of the objects ``file_ids`` that are still
        uploads of ours at a temporary name in ``target``'s folder; how many
        it did (not one that was renamed into place after all, moved, gone or
        never completed).  ``NotFound`` (of the folder) counts as all gone."""
        ...

    def conflict(self, target: str) -> CloudfsError:
        """The error (a :class:`VersionConflict`) for "``target`` changed meanwhile", said as the backend
        says a stale version (so callers that look closer see its own code)."""
        ...


def same_file(current: Entry, base: Entry) -> bool:
    """``current`` is still the file ``base`` describes.  Not the time: on
    some servers a rename moves it too."""
    return current.file_id == base.file_id and not current.is_dir and current.size == base.size


#: targets whose stranded uploads are remembered (a target whose swap never succeeds again is forgotten
#: eventually: its copies stay at their temporary names, hidden)
STRANDED_TARGETS_KEPT = 4096


class BesideReplace:
    """The swap of one backend instance; it remembers content stranded at a
    temporary name by a failed swap, and deletes it once a later swap put
    newer content at the same target (see the module's doc)."""

    def __init__(self, steps: SwapSteps) -> None:
        self.steps = steps
        #: target path -> ids of our uploads maybe left complete at a temporary name beside it
        self._stranded: LRUCache[str, set[str]] = LRUCache(maxsize=STRANDED_TARGETS_KEPT)

    def strand(self, target: str, file_id: str) -> None:
        """Our upload ``file_id`` for ``target`` may be left complete at its
        temporary name (its swap failed or was never heard of): deleted
        after the next swap that places ``target``."""
        self._stranded.setdefault(target, set()).add(file_id)

    async def swap(self, uploaded_path: str, base: Entry, target: str, *,
                   found: Callable[[Entry], None] | None = None) -> Entry:
        """Put the content uploaded at ``uploaded_path`` (beside ``target``,
        in the same folder) in the place of ``base``, which must still be the
        file at ``target`` (a :class:`VersionConflict` otherwise, after the
        upload is dropped).  ``found`` hears of the uploaded file before
        anything is deleted: from then on it may land without our hearing of
        it (a lost answer to the rename)."""
        steps = self.steps
        uploaded, current = await steps.swap_sides(uploaded_path, target)
        if uploaded is None:
            raise NotFound(f"{uploaded_path}: no such file or folder")
        if found is not None:
            found(uploaded)
        if current is not None and not same_file(current, base):
            # changed by someone else since the caller based its content on it
            with self._stranded_if_failing(target, uploaded):
                await steps.drop_upload(uploaded, what=f"drop the upload for {target}")
            raise steps.conflict(target)
        with self._stranded_if_failing(target, uploaded):
            if current is not None:  # None: deleted meanwhile, just move ours in
                await steps.retire(current, target)
            placed = await steps.rename_into_place(uploaded, split(target)[1])
        await self.drop_stranded(target, keep=placed.file_id)
        return placed

    @contextmanager
    def _stranded_if_failing(self, target: str, uploaded: Entry) -> Iterator[None]:
        """Remember ``uploaded`` as stranded if the block fails (or is
        cancelled): it may be left complete at its temporary name."""
        try:
            yield
        except BaseException:
            log.error("the new content of %s may be left at %s: its swap into place failed", target, uploaded.path)
            self.strand(target, uploaded.file_id)
            raise

    async def drop_stranded(self, target: str, *, keep: str = "") -> None:
        """Delete what earlier swaps for ``target`` left at temporary names
        (but ``keep``: the content now in place), now that a later upload
        replaced them."""
        stranded = self._stranded.pop(target, set()) - {keep}
        if stranded:
            await self.drop(stranded, target)

    async def drop(self, file_ids: Set[str], target: str) -> None:
        """Delete those of ``file_ids`` that are still uploads of ours at a
        temporary name beside ``target``; failures are logged (they stay, hidden)."""
        try:
            if dropped := await self.steps.drop_if_beside(file_ids, target):
                log.info("deleted %d new version(s) of %s that interrupted uploads left beside it", dropped, target)
        except NotFound:
            return
        except CloudfsError as exc:
            log.warning("could not delete a version of %s left beside it by an interrupted upload: %s",
                        target, exc)
