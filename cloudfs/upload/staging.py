"""LocalFile: one file's content staged on local disk for writing.

A file opened for writing gets a sparse *staging file* in the cache dir.  The
bytes written land there; the bytes not written (yet) still come from the
remote *base* version the file was opened on, and are downloaded only when
needed: when read, or before the whole file is uploaded.  So appending to a
large file, or rewriting a few bytes of it, costs no download until upload.

Invariant: the content of the file is
  * the staging file on every span in ``present``,
  * the base version on ``[0, base_limit)`` outside ``present``,
  * zeros everywhere else (holes of the sparse staging file).
``base_limit`` only ever shrinks (a truncate below it), so bytes past a
truncation never come back from the base.

Every change bumps ``generation``; the uploader compares generations to know
whether what it uploaded is still the current content.

Where the backend wants the whole file's SHA-256 before the upload
(capability ``whole_file_hash``), a file written front to back from empty is
hashed as it is written (:class:`Sha256Run`, with its states every few MiB
for parallel parts): at close the hash is ready and the file need not be
read again.  A write anywhere else, a truncate that is not to zero, or base
content to fill ends that; the upload then hashes the staged file itself.

Plain ``def`` for the local I/O (page-cache speed); the only awaits are the
base downloads, through a ``fetch(span) -> bytes`` callable.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cloudfs.cache.ranges import Span, SpanSet, clamp, split
from cloudfs.client.models import Entry, file_mtime_ns
from cloudfs.client.sha256state import HashStates, Sha256Run

FetchFn = Callable[[Entry, Span], Awaitable[bytes]]

#: base content is downloaded in pieces of this size when filling
FILL_PART = 8 << 20
#: a file written front to back has its staged bytes sent to disk every this
#: many bytes, so the fsync that close must do finds little left to write
WRITE_OUT_STEP = 16 << 20


_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
#: sync_file_range(2): start writing the range's dirty pages out, without waiting
SYNC_FILE_RANGE_WRITE = 2


def start_write_out(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range of a file to disk now, in the
    background (Linux's sync_file_range; nowhere else: a no-op)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


#: the id of a file that has no object on the server yet: created here and
#: not uploaded, or lost from the server and to be created again (its first
#: upload makes the object, and the file takes that object's id)
UNSENT_PREFIX = "pending:"


def is_unsent(file_id: str) -> bool:
    return file_id.startswith(UNSENT_PREFIX)


def unsent_entry(path: str) -> Entry:
    """The entry of a new, empty file created here: the server learns of it
    with its first upload (which creates it, or finds the name taken)."""
    now = now_ns()
    return Entry(file_id=f"{UNSENT_PREFIX}{uuid.uuid4().hex}", path=path, is_dir=False, size=0,
                 mtime_ns=now, ctime_ns=now)


def now_ns() -> int:
    """Now, to the millisecond: what servers store, so an upload does not
    visibly change the mtime of what was written."""
    return time.time_ns() // 1_000_000 * 1_000_000


@dataclass(eq=False)
class LocalFile:
    file_id: str
    remote_path: str
    staging: Path
    size: int
    mtime_ns: int
    #: the remote object this content replaces; its bytes fill what was not written
    base: Entry | None = None
    base_limit: int = 0
    present: SpanSet = field(default_factory=SpanSet)
    #: content differs from the server's
    dirty: bool = False
    #: the file left the namespace (unlinked, or replaced by a rename): its
    #: content serves the handles still open on it and is never uploaded, so
    #: a write through one of them does not make it dirty
    removed: bool = False
    generation: int = 0
    #: generation already recorded in the journal (and the staging file fsync'd)
    journaled_generation: int = -1
    #: the last upload's failure, reported at the next close/fsync
    error: BaseException | None = None
    #: newest generation known to be on the server / to have failed to upload
    uploaded_generation: int = -1
    failed_generation: int = -1
    #: open handles writing to it
    writers: int = 0
    fd: int | None = None
    #: uploads tried since the last one known to have landed: tag -> (size, mtime_ns)
    attempts: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: SHA-256 of the small contents those uploads sent (one may land untagged)
    sent_digests: set[str] = field(default_factory=set)
    #: every write so far went to the end of the file (a copy being written):
    #: its upload may start as soon as it is closed
    sequential: bool = False
    #: staged bytes below this offset have been handed to the disk (see WRITE_OUT_STEP)
    written_out: int = 0
    #: public metadata (the mode) set while the content was pending: it goes
    #: up with the next upload instead of a request of its own
    metadata: dict[str, str] = field(default_factory=dict)
    #: hash the content while it is written front to back (see the module's doc)
    hash_content: bool = False
    #: the SHA-256 of the content written so far, while it was written in order from empty
    _hash: Sha256Run | None = field(default=None, repr=False)

    # ---- construction ------------------------------------------------------
    @classmethod
    def create(cls, staging_dir: Path, entry: Entry, *, hash_content: bool = False,
               spare: Path | None = None) -> "LocalFile":
        """Stage an existing remote file (nothing is downloaded yet), or a
        new one that is not on the server yet (an unsent entry: no base);
        ``hash_content``: the backend wants the content's SHA-256 up front;
        ``spare``: an empty staging file made ahead, to use instead of
        making one now (see :mod:`cloudfs.upload.spares`)."""
        staging = spare if spare is not None else staging_dir / uuid.uuid4().hex
        unsent = is_unsent(entry.file_id)
        local = cls(
            file_id=entry.file_id,
            remote_path=entry.path,
            staging=staging,
            size=entry.size,
            # the file's own time (an exact one set by utimensat), not the server's
            mtime_ns=file_mtime_ns(entry),
            base=None if unsent else entry,
            base_limit=0 if unsent else entry.size,
            hash_content=hash_content,
        )
        try:
            fd = local._open(create=spare is None)
        except FileNotFoundError:
            # (made when the mount starts: made again only if it went since,
            # not checked for every file a tar x or an rsync creates; a spare
            # removed meanwhile is replaced by a file made now)
            local.staging = staging_dir / uuid.uuid4().hex
            staging_dir.mkdir(parents=True, exist_ok=True)
            fd = local._open(create=True)
        if entry.size:
            os.ftruncate(fd, entry.size)  # sparse: the base fills it as needed
        if hash_content and entry.size == 0:
            local._hash = Sha256Run()
        if unsent:
            local._changed()  # even empty, it is to be made on the server
        return local

    def _open(self, *, create: bool = False) -> int:
        if self.fd is None:
            flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
            self.fd = os.open(self.staging, flags, 0o600)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        """Remove the staging file (the content is on the server, or unwanted)."""
        self.close()
        self.staging.unlink(missing_ok=True)

    # ---- changes -------------------------------------------------------------
    def _changed(self) -> None:
        self._bump()
        self.mtime_ns = now_ns()

    def _bump(self) -> None:
        self.generation += 1
        self.dirty = not self.removed

    def write(self, off: int, data: bytes) -> int:
        fd = self._open()
        written = os.pwrite(fd, data, off)
        self._hash_write(off, data, written)
        self.sequential = off == self.size and (self.sequential or off == 0) and self.base_limit == 0
        self.present.add((off, off + written))
        self.size = max(self.size, off + written)
        self._changed()
        if self.sequential and self.size - self.written_out >= WRITE_OUT_STEP:
            start_write_out(fd, self.written_out, self.size - self.written_out)
            self.written_out = self.size
        return written

    def truncate(self, size: int) -> None:
        os.ftruncate(self._open(), size)
        if size < self.size:
            self.present.truncate(size)
            self.base_limit = min(self.base_limit, size)
        if size == 0 and self.base_limit == 0 and self.hash_content:
            self._hash = Sha256Run()  # written afresh: hashed from the start again
        elif self._hash is not None and self._hash.length != size:
            self._hash = None
        self.size = size
        self.sequential = size == 0 and self.base_limit == 0
        self.written_out = min(self.written_out, size)
        self._changed()

    def _hash_write(self, off: int, data: bytes, written: int) -> None:
        """Keep hashing a write at the end of what was hashed; anything else
        ends the hash (the upload reads the file back instead)."""
        run = self._hash
        if run is None:
            return
        if off != run.length or run.length != self.size or self.base_limit:
            self._hash = None
            return
        run.update(data if written == len(data) else bytes(data[:written]))

    def hashed(self) -> HashStates | None:
        """The SHA-256 (and states) of the whole content as it is now, if it
        was hashed as written; None if the upload must hash the file."""
        run = self._hash
        return run.result() if run is not None and run.length == self.size else None

    def set_mtime(self, mtime_ns: int) -> None:
        self.mtime_ns = mtime_ns
        self._bump()

    def set_metadata(self, values: dict[str, str]) -> None:
        """Metadata for the next upload to carry (a change like any other)."""
        self.metadata.update(values)
        self._bump()

    def base_metadata_set(self, entry: Entry) -> None:
        """``entry``, the object of the base version, got new metadata on the
        server (a chmod of a clean file): the base shows it too, so that the
        next upload, which replaces the base, lands showing it."""
        if self.base is not None and self.base.file_id == entry.file_id and self.base.version == entry.version:
            self.base = dataclasses.replace(self.base, metadata=dict(entry.metadata))

    # ---- reading ---------------------------------------------------------------
    def missing(self, span: Span | None = None) -> list[Span]:
        """Spans that must come from the base version."""
        start, end = span if span is not None else (0, self.size)
        return self.present.missing(clamp((start, min(end, self.base_limit)), self.size))

    def _base(self) -> Entry:
        """The version the missing bytes come from (a file with holes has one)."""
        if self.base is None:
            raise OSError(errno.EIO, "the staging file misses bytes of no known version")
        return self.base

    async def read(self, off: int, length: int, fetch: FetchFn) -> bytes:
        start, end = clamp((off, off + length), self.size)
        if start >= end:
            return b""
        holes = self.missing((start, end))
        if holes:
            # fetch the base bytes and keep them, so the next read is local
            for hole in holes:
                data = await fetch(self._base(), hole)
                self._store_base(hole, data)
        return os.pread(self._open(), end - start, start)

    async def fill(self, fetch: FetchFn) -> None:
        """Make the staging file hold the whole content (before an upload)."""
        for hole in self.missing():
            for part in split(hole, FILL_PART):
                data = await fetch(self._base(), part)
                self._store_base(part, data)

    def _store_base(self, span: Span, data: bytes) -> None:
        """Put downloaded base bytes in place, except where a write or a
        truncate got there while we were downloading."""
        if len(data) != span[1] - span[0]:
            raise OSError(5, f"base content of {self.remote_path} is shorter than expected")
        for start, end in self.present.missing(clamp(span, self.base_limit)):
            piece = data[start - span[0] : end - span[0]]
            os.pwrite(self._open(), piece, start)
            self.present.add((start, end))

    @property
    def complete(self) -> bool:
        return not self.missing()

    def snapshot(self) -> bytes:
        """The whole staged content (of a small, complete file), read now:
        the journal keeps it instead of syncing the staging file."""
        if self.fd is not None:
            data = os.pread(self.fd, self.size, 0)
        else:
            with open(self.staging, "rb") as fp:
                data = fp.read(self.size)
        if len(data) != self.size:
            raise OSError(5, f"the staging file of {self.remote_path} is shorter than its content")
        return data

    def sync(self) -> None:
        """Make the staging file durable (before the journal promises it)."""
        os.fdatasync(self._open())

    # ---- after an upload ---------------------------------------------------
    def uploaded(self, entry: Entry, generation: int, metadata: dict[str, str] | None = None) -> None:
        """The content of ``generation`` is now ``entry`` on the server,
        with ``metadata`` (what the upload carried): those values are no
        longer pending, unless they changed meanwhile."""
        for key, value in (metadata or {}).items():
            if self.metadata.get(key) == value:
                del self.metadata[key]
        self.base = entry
        # only ever shrinks: the upload filled everything below it, and a
        # later truncation lowered it; raising it would let the landed
        # version's bytes show through holes made since
        self.base_limit = min(self.base_limit, entry.size)
        self.file_id = entry.file_id
        self.uploaded_generation = generation
        # uploads of a file run one at a time: this was the latest attempt, and it
        # worked, so an earlier failure is no longer news (close reported it as if
        # it were, when the content changed again while this upload ran)
        self.error = None
        if generation == self.generation:
            self.dirty = False
