"""The conflict policy: a file changed on the server while local changes
were pending is never overwritten.  Its local content goes up beside it
under a conflict name, unless the server's version is one of ours whose
answer was lost (an earlier attempt landed unconfirmed: told by its tag, or
for a small untagged one by content).  A base that vanished or changed before
we had all of it reads as zeros, and the content goes up as a new file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import posixpath
import re
import time
from contextlib import aclosing
from pathlib import Path

import trio

from cloudfs.cache.ranges import SpanSet
from cloudfs.client.api import Client
from cloudfs.client.models import UPLOAD_TAG_KEY, Entry, file_mtime_ns
from cloudfs.errors import CloudfsError
from cloudfs.upload.journal import Journal
from cloudfs.upload.registry import StagedFiles
from cloudfs.upload.staging import LocalFile

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")

#: a version without our tag is compared with the staged content (downloaded) up to this size
CONTENT_CHECK_MAX = 16 << 20
#: the suffix a conflict copy's name carries (see conflict_path)
CONFLICT_SUFFIX = re.compile(r" \(conflict \d{4}-\d\d-\d\d \d{6}(?: \d+)?\)$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def staged_digest(path: Path, size: int) -> str:
    """SHA-256 of a staging file (a small one is read right here: page cache)."""
    if size <= 1 << 20:
        return sha256_of(path)
    return await trio.to_thread.run_sync(sha256_of, path)


class Conflicts:
    """What the server holds at a staged file's path, told apart: our own
    upload, someone else's version, or nothing."""

    def __init__(self, client: Client, journal: Journal, files: StagedFiles) -> None:
        self.client = client
        self.journal = journal
        self.files = files

    @staticmethod
    def is_own_upload(local: LocalFile, remote: Entry) -> bool:
        """Whether the server's current version of the file is one that an
        unconfirmed attempt of ours uploaded: its tag, size and mtime (the
        tag alone could be left over on the file under another client's
        version; mtimes may be kept to the second only)."""
        attempt = local.attempts.get(remote.metadata.get(UPLOAD_TAG_KEY, ""))
        if attempt is None or remote.uploading or remote.is_dir:
            return False
        size, mtime_ns = attempt
        remote_mtime_ns = file_mtime_ns(remote)
        return remote.size == size and abs(remote_mtime_ns - mtime_ns) < 1_000_000_000

    async def holds_untagged(self, local: LocalFile, remote: Entry) -> bool:
        """Whether the server's current version is a small one of ours that
        never got its tag: an upload in one request (the client's
        ``put_whole``) whose answer was lost tags the version only after it
        landed.  Told by content (SHA-256), so small files only.  Such an
        upload replaces its base object in place: another object with equal
        content (empty files, say) is someone else's, and uploading over it
        would take the id of a file the write-back may be staging too.  A new
        file (no base) made by such an upload is a new object: one this
        write-back stages under its own id is not it."""
        base = local.base
        if base is None and remote.file_id in self.files:
            return False
        if base is not None and remote.file_id != base.file_id:
            return False
        if not local.sent_digests or remote.size > CONTENT_CHECK_MAX or remote.is_dir or remote.uploading:
            return False
        return await self.remote_digest(remote) in local.sent_digests

    async def conflict_path(self, path: str) -> str:
        """A free name beside ``path`` for a conflict copy.  Free on the
        server, and not the path of another staged file of ours (several
        files losing their place at once would pick the same name, then
        conflict with each other).  The caller takes it with no await in
        between.  A conflict copy that conflicts again is named after the
        original, not nested."""
        folder, name = posixpath.split(path)
        stem, ext = posixpath.splitext(name)
        stem = CONFLICT_SUFFIX.sub("", stem) or stem
        stamp = time.strftime("%Y-%m-%d %H%M%S")
        for n in range(1, 100):
            suffix = f" (conflict {stamp})" if n == 1 else f" (conflict {stamp} {n})"
            candidate = posixpath.join(folder, f"{stem}{suffix}{ext}")
            if self.files.claimed(candidate):
                continue
            if await self.stat_or_none(candidate) is None and not self.files.claimed(candidate):
                return candidate
        raise CloudfsError(f"no free conflict name for {path}", errno=errno.EEXIST)

    async def holds(self, remote: Entry, staging: Path, size: int, present: SpanSet) -> bool:
        """Whether ``remote``'s content is exactly the staged bytes (SHA-256)."""
        if remote.size != size or remote.uploading:
            return False
        if present.missing((0, size)):
            return False  # parts of our content were never local: it cannot be ours alone
        local_hash = await trio.to_thread.run_sync(sha256_of, staging)
        return await self.remote_digest(remote) == local_hash

    async def remote_digest(self, remote: Entry) -> str:
        digest = hashlib.sha256()
        async with aclosing(self.client.stream(remote, 0, remote.size)) as pieces:
            async for piece in pieces:
                digest.update(piece)
        return digest.hexdigest()

    async def stat_or_none(self, path: str) -> Entry | None:
        try:
            return await self.client.stat(path)
        except CloudfsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    async def lose_base(self, local: LocalFile, remote: Entry | None) -> None:
        """The version ``local`` was based on is gone (``remote``: what is at
        its path now): what we never had of it reads as zeros, and the
        content goes up as a new file, never over someone else's."""
        local.present.add((0, local.size))
        local.base_limit = 0
        local.base = None
        if remote is None:
            log.warning("%s vanished from the server before pending changes could be uploaded; re-creating it",
                        local.remote_path)
            return
        path = local.remote_path
        self.files.set_path(local, await self.conflict_path(path))
        log.warning("%s changed on the server before pending changes could be uploaded; they will be saved as %s",
                    path, local.remote_path)
        await self.journal.move(local.file_id, local.remote_path)
