"""Replacing a file where the backend cannot overwrite in place
(``capabilities.overwrite_in_place`` False): the new content is uploaded
beside the file under a temporary name (by the backend's upload), then
swapped in here: check the file at the target is still the one the new
content was based on, delete it, rename the upload into place.

A failed upload leaves the old content intact; the swap itself is not
atomic (between the delete and the rename the name is free), and the
replaced file ends up with the upload's id (``replace_gives_new_id``).
A backend provides the steps (:class:`SwapSteps`); the order, the conflict
rule and what happens to an upload stranded by a failed rename are the same
for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

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

    def conflict(self, target: str) -> CloudfsError:
        """The error (a :class:`VersionConflict`) for "``target`` changed meanwhile", said as the backend
        says a stale version (so callers that look closer see its own code)."""
        ...


def same_file(current: Entry, base: Entry) -> bool:
    """``current`` is still the file ``base`` describes.  Not the time: on
    some servers a rename moves it too."""
    return current.file_id == base.file_id and not current.is_dir and current.size == base.size


class BesideReplace:
    """The swap of one backend instance; it remembers content stranded at a
    temporary name by a swap whose rename failed, and deletes it once a
    later swap put newer content at the same target."""

    def __init__(self, steps: SwapSteps) -> None:
        self.steps = steps
        #: target path -> our content left at a temporary name by a swap whose rename failed
        self._stranded: dict[str, Entry] = {}

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
        if current is not None:  # None: deleted meanwhile, just move ours in
            if not same_file(current, base):
                # changed by someone else since the caller based its content on it
                await steps.drop_upload(uploaded, what=f"drop the upload for {target}")
                raise steps.conflict(target)
            await steps.retire(current, target)
        try:
            placed = await steps.rename_into_place(uploaded, split(target)[1])
        except CloudfsError:
            log.error("the new content of %s is left at %s: renaming it into place failed", target, uploaded_path)
            self._stranded[target] = uploaded
            raise
        stranded = self._stranded.pop(target, None)
        if stranded is not None and stranded.file_id != placed.file_id:
            await self._drop_stranded(stranded)
        return placed

    async def _drop_stranded(self, stranded: Entry) -> None:
        """Delete the content an earlier, failed swap left at a temporary
        name (hidden, but counted against the quota), now that a later
        upload replaced it.  By id: if that rename did happen after all,
        the object was replaced since and is gone already."""
        try:
            await self.steps.drop_upload(stranded, what=f"drop {stranded.path}")
        except CloudfsError as exc:
            log.warning("could not delete %s, left by a failed upload: %s", stranded.path, exc)
