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

    def under(self, path: str) -> list[LocalFile]:
        """Staged files at or below ``path``."""
        prefix = path.rstrip("/") + "/"
        return [local for local in self._files.values()
                if local.remote_path == path or local.remote_path.startswith(prefix)]

    def claimed(self, path: str) -> bool:
        """Whether a staged file is to be uploaded to ``path``."""
        return any(local.remote_path == path for local in self._files.values())

    # ---- changes (by the write-back) ---------------------------------------------
    def add(self, local: LocalFile) -> None:
        self._files[local.file_id] = local
        if is_unsent(local.file_id):
            self.unsent.add(local.file_id)

    def discard(self, local: LocalFile, file_id: str | None = None) -> None:
        """``local`` no longer under ``file_id`` (default: its id now); another
        file staged under that id stays."""
        file_id = local.file_id if file_id is None else file_id
        if self._files.get(file_id) is local:
            del self._files[file_id]
            self.unsent.discard(file_id)

    def relocate(self, moves: Mapping[str, str]) -> list[LocalFile]:
        """Subtrees moved (old root -> new root, all at once): the staged
        files in them take their new paths.  Returns the dirty ones."""
        moved = []
        relocation = Relocation(moves)
        for local in self._files.values():
            path = relocation.of(local.remote_path)
            if path is not None:
                local.remote_path = path
                if local.dirty:
                    moved.append(local)
        return moved
