"""What a remount must show the same of the files this mount uploaded: their
inode number and times, kept by object id in the cache dir.

git's index, rsync and backup tools compare a file's inode number, mtime and
ctime with what they saw before; one that changed makes them read the whole
file again (on a cloud drive: download it).  A file created here had its
inode number before the server gave it an id, and its times came from this
mount's clock while its upload waited; where a replace gives a new id
(``replace_gives_new_id``) every rewrite is a new object, and servers without
custom metadata keep no exact mtime.  So when an upload lands, the inode number and the times the
file showed go to this store, by the new object id and content version; the
next mount finds them there (:meth:`InodeRecords.get`) and shows the same.

The store is a log of JSON lines appended to (one write per landed upload,
rename, chmod or utimensat of such a file, never a sync: a lost line costs a
re-read, no data), read whole when the mount starts and rewritten compactly
when it holds many stale lines.  It keeps at most :data:`RECORDS_KEPT` objects
(the oldest go first).  It is a cache: a wiped cache dir only means programs
read those files once more.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

__all__ = ["RECORDS_KEPT", "InodeRecords", "Uploaded"]

#: objects whose record is kept (a line is ~120 bytes)
RECORDS_KEPT = 1 << 20


@dataclass(frozen=True, slots=True)
class Uploaded:
    """An object this mount uploaded: the inode number it had here, and the
    times shown for content ``version`` (they stand while the server shows
    that version)."""

    ino: int
    version: str
    mtime_ns: int
    ctime_ns: int


class InodeRecords:
    """The records by object id, kept in ``path`` (None: in memory only)."""

    def __init__(self, path: Path | None = None, *, kept: int = RECORDS_KEPT) -> None:
        self.path = path
        self.kept = kept
        self._by_id: dict[str, Uploaded] = {}
        #: inode number -> object id (numbers no other object may take)
        self._owners: dict[int, str] = {}
        self._lines = 0
        self._log: IO[str] | None = None
        self._broken = False
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, file_id: str) -> Uploaded | None:
        return self._by_id.get(file_id)

    def owner_of(self, ino: int) -> str | None:
        """The object whose record holds inode number ``ino``."""
        return self._owners.get(ino)

    def put(self, file_id: str, record: Uploaded) -> None:
        if self._by_id.get(file_id) == record:
            return
        self._set(file_id, record)
        self._append({"id": file_id, "ino": record.ino, "v": record.version, "m": record.mtime_ns,
                      "c": record.ctime_ns})
        if len(self._by_id) > self.kept:
            self.drop(next(iter(self._by_id)))

    def drop(self, file_id: str) -> None:
        """Object ``file_id`` is gone (deleted, or replaced by a new one)."""
        if self._unset(file_id):
            self._append({"id": file_id})

    def close(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None

    # ---- in memory ---------------------------------------------------------
    def _set(self, file_id: str, record: Uploaded) -> None:
        self._unset(file_id)
        self._by_id[file_id] = record  # (re-inserted: the newest last)
        self._owners[record.ino] = file_id

    def _unset(self, file_id: str) -> bool:
        old = self._by_id.pop(file_id, None)
        if old is None:
            return False
        if self._owners.get(old.ino) == file_id:
            del self._owners[old.ino]
        return True

    # ---- on disk -------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            with open(path, encoding="utf-8") as fp:
                for line in fp:
                    self._lines += 1
                    self._read_line(line)
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("inode records in %s unreadable (%s); files uploaded before are read again once", path, exc)
        while len(self._by_id) > self.kept:
            self._unset(next(iter(self._by_id)))
        if self._lines > 2 * len(self._by_id) + 1024:
            self._compact(path)

    def _read_line(self, line: str) -> None:
        try:
            item = json.loads(line)
            file_id = item["id"]
            if "ino" not in item:
                self._unset(file_id)
                return
            record = Uploaded(int(item["ino"]), str(item["v"]), int(item["m"]), int(item["c"]))
        except (ValueError, KeyError, TypeError):
            return  # a line cut short by a crash
        if isinstance(file_id, str) and record.ino > 1:
            self._set(file_id, record)

    def _compact(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fp:
                for file_id, r in self._by_id.items():
                    fp.write(json.dumps({"id": file_id, "ino": r.ino, "v": r.version, "m": r.mtime_ns,
                                         "c": r.ctime_ns}) + "\n")
            os.replace(tmp, path)
            self._lines = len(self._by_id)
        except OSError as exc:
            log.warning("could not compact the inode records in %s: %s", path, exc)

    def _append(self, item: dict[str, object]) -> None:
        if self.path is None or self._broken:
            return
        try:
            if self._log is None:
                self._log = open(self.path, "a", encoding="utf-8")
            self._log.write(json.dumps(item) + "\n")
            self._log.flush()  # (no sync: a line lost in a crash costs a re-read, no data)
            self._lines += 1
        except OSError as exc:
            # a cache: the mount goes on, files uploaded from now on are read again after a remount
            log.warning("could not write the inode records in %s: %s; not kept any more", self.path, exc)
            self._broken = True
            self.close()
