"""The path -> id cache an ID-addressed API needs: KooDrive has no lookup by
path, so a path is resolved by listing each folder on the way down once and
remembering what was seen.  Renames, moves and deletes update or drop the
entries under the old path; a stale id (another client moved the item) is
noticed when the server refuses it and the path is resolved again."""

from __future__ import annotations

from cachetools import LRUCache


class IdCache:
    def __init__(self, root_id: str, maxsize: int = 100_000) -> None:
        self.root_id = root_id
        self._ids: LRUCache[str, str] = LRUCache(maxsize=maxsize)

    def get(self, path: str) -> str | None:
        return self.root_id if path == "/" else self._ids.get(path)

    def put(self, path: str, file_id: str) -> None:
        if path != "/":
            self._ids[path] = file_id

    def forget(self, path: str) -> None:
        """Drop ``path`` and everything under it."""
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self._ids if k == path or k.startswith(prefix)]:
            self._ids.pop(key, None)
