"""The staged files the write-back knows, by object id.

Every file with local content (dirty, or held open) is here until it is
clean and nobody writes to it.  The filesystem reads it (which staged file an
inode's object has, which ones are under a path); it changes only through
the write-back (:class:`~cloudfs.upload.writeback.WriteBack`), which keeps its
queues in step with it.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView

from cloudfs.client.paths import Relocation
from cloudfs.upload.staging import LocalFile, is_unsent


class StagedFiles:
    def __init__(self) -> None:
        self._files: dict[str, LocalFile] = {}
        #: the ids among them of files not on the server yet (created here):
        #: the server shows none of them until their first upload lands
        self.unsent: set[str] = set()
        #: the same files by remote path (path -> id -> file), and the path
        #: each id is filed under: a lookup or a rename of one file finds
        #: its staged upload without a pass over every staged file (rsync
        #: and tar x leave hundreds waiting for their first upload)
        self._by_path: dict[str, dict[str, LocalFile]] = {}
        self._path_of: dict[str, str] = {}

    # ---- reading ---------------------------------------------------------------
    def get(self, file_id: str) -> LocalFile | None:
        return self._files.get(file_id)

    def __getitem__(self, file_id: str) -> LocalFile:
        return self._files[file_id]

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def values(self) -> ValuesView[LocalFile]:
        return self._files.values()

    def items(self) -> ItemsView[str, LocalFile]:
        return self._files.items()

    def at(self, path: str) -> list[tuple[str, LocalFile]]:
        """The staged files whose remote path is ``path``, with the id each
        is staged under."""
        filed = self._by_path.get(path)
        if not filed:
            return []
        return [(file_id, local) for file_id, local in filed.items() if local.remote_path == path]

    def under(self, path: str, *, folder: bool = True) -> list[LocalFile]:
        """Staged files at or below ``path`` (not ``folder``: a file's path,
        which has nothing below it)."""
        if not folder:
            return [local for _, local in self.at(path)]
        prefix = path.rstrip("/") + "/"
        return [local for local in self._files.values()
                if local.remote_path == path or local.remote_path.startswith(prefix)]

    def claimed(self, path: str) -> bool:
        """Whether a staged file is to be uploaded to ``path``."""
        return bool(self.at(path))

    # ---- changes (by the write-back) ---------------------------------------------
    def add(self, local: LocalFile) -> None:
        file_id = local.file_id
        self._unfile(file_id)
        self._files[file_id] = local
        self._file(file_id, local)
        if is_unsent(file_id):
            self.unsent.add(file_id)

    def discard(self, local: LocalFile, file_id: str | None = None) -> None:
        """``local`` no longer under ``file_id`` (default: its id now); another
        file staged under that id stays."""
        file_id = local.file_id if file_id is None else file_id
        if self._files.get(file_id) is local:
            del self._files[file_id]
            self.unsent.discard(file_id)
            self._unfile(file_id)

    def set_path(self, local: LocalFile, path: str) -> None:
        """``local`` is to be uploaded to ``path`` now (a conflict copy's name)."""
        local.remote_path = path
        ids = [local.file_id] if self._files.get(local.file_id) is local else \
            [file_id for file_id, staged in self._files.items() if staged is local]
        for file_id in ids:
            self._unfile(file_id)
            self._file(file_id, local)

    def relocate(self, moves: Mapping[str, str], *, folders: bool = True) -> list[LocalFile]:
        """Subtrees moved (old root -> new root, all at once): the staged
        files in them take their new paths.  Returns the dirty ones.
        Not ``folders``: every old root is a file's path (nothing below it),
        so only the files at those paths move."""
        relocation = Relocation(moves)
        if folders:
            staged = list(self._files.items())
        else:
            staged = [pair for old in moves for pair in self.at(old)]
        # the new paths first, then the index: an exchange swaps two paths at once
        changed = []
        for file_id, local in staged:
            path = relocation.of(local.remote_path)
            if path is not None:
                local.remote_path = path
                changed.append((file_id, local))
        for file_id, local in changed:
            self._unfile(file_id)
            self._file(file_id, local)
        return [local for _, local in changed if local.dirty]

    # ---- the path index -------------------------------------------------------------
    def _file(self, file_id: str, local: LocalFile) -> None:
        self._by_path.setdefault(local.remote_path, {})[file_id] = local
        self._path_of[file_id] = local.remote_path

    def _unfile(self, file_id: str) -> None:
        path = self._path_of.pop(file_id, None)
        if path is None:
            return
        filed = self._by_path.get(path)
        if filed is not None:
            filed.pop(file_id, None)
            if not filed:
                del self._by_path[path]
