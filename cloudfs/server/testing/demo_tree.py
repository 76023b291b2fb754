"""A sample tree for ``cloudfs demo``: nested folders, small and medium files,
one large deterministic file and non-ASCII names, written through the store.

Idempotent: items that already exist are left alone, so calling it on every
demo start is cheap.  Contents are reproducible (seeded PRNG), so a test can
recompute any file with :func:`demo_bytes`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..common.db import Database
from ..common.store import FileRow, Store, new_blob_name

LARGE_NAME = "large-64MiB.bin"
LARGE_SIZE = 64 << 20
_TEXT = ("Cloudreve demo drive served by cloudfs.\n"
         "Everything here lives in the server's data directory.\n")

#: (path elements, size or text); sizes produce deterministic pseudo-random bytes
DEMO_FILES: list[tuple[tuple[str, ...], Any]] = [
    (("README.txt",), _TEXT),
    (("Documents", "notes.md"), "# Notes\n\n- mount\n- read\n- write\n"),
    (("Documents", "report-2024.pdf"), 256 << 10),
    (("Documents", "Projects", "cloudfs", "design.txt"), "keyset pagination, streaming I/O\n" * 50),
    (("Documents", "Projects", "cloudfs", "data.csv"), "id,name\n" + "".join(f"{i},item{i}\n" for i in range(500))),
    (("Photos", "2024", "beach.jpg"), 1 << 20),
    (("Photos", "2024", "mountains.jpg"), 1536 << 10),
    (("Photos", "2025", "city lights.png"), 768 << 10),
    (("Music", "Ambient", "track 01.mp3"), 2 << 20),
    (("Ünïcödé 日本語", "こんにちは.txt"), "こんにちは世界\n"),
    (("Ünïcödé 日本語", "Ελληνικά.txt"), "Καλημέρα κόσμε\n"),
    (("Ünïcödé 日本語", "emoji 🎉.txt"), "🎉🎈\n"),
    (("Empty folder",), None),
    (("empty.txt",), ""),
    (("Large", LARGE_NAME), LARGE_SIZE),
]


def demo_bytes(path: tuple[str, ...], size: int) -> Iterator[bytes]:
    """The deterministic content of a sized demo file, in 1 MiB pieces."""
    rng = random.Random("/".join(path))
    left = size
    while left > 0:
        n = min(left, 1 << 20)
        yield rng.randbytes(n)
        left -= n


def _open(target: Any) -> tuple[Store, Database | None]:
    if isinstance(target, Store):
        return target, None
    store = getattr(target, "store", None)
    if isinstance(store, Store):
        return store, None
    db = Database(Path(target))
    return Store(db), db


def seed_demo_tree(target: Any, email: str | None = None) -> int:
    """Populate the account's drive; ``target`` is a data dir, a Store or a ServerState.

    Returns the number of items created.  The account must exist (the server
    creates it on first start).
    """
    store, owned = _open(target)
    try:
        conn = store.db.conn
        row = conn.execute("SELECT id FROM users ORDER BY id LIMIT 1" if email is None
                           else "SELECT id FROM users WHERE email=?", () if email is None else (email,)).fetchone()
        if row is None:
            raise ValueError("no account in this data directory")
        uid = int(row[0])
        root = store.root(uid)
        assert root is not None
        created = 0
        for path, content in DEMO_FILES:
            parent = root
            folders = path if content is None else path[:-1]
            for name in folders:
                existing = store.child(parent.id, name)
                if existing is None:
                    with store.db.tx():
                        existing = store.create_folder(parent, name, None)
                    created += 1
                parent = existing
            if content is None or store.child(parent.id, path[-1]) is not None:
                continue
            _add_file(store, uid, parent, path, content)
            created += 1
        return created
    finally:
        if owned is not None:
            owned.close()


def _add_file(store: Store, uid: int, parent: FileRow, path: tuple[str, ...], content: Any) -> None:
    if isinstance(content, str):
        pieces: Any = [content.encode("utf-8")]
    else:
        pieces = demo_bytes(path, int(content))
    blob = new_blob_name()
    blob_path = store.blob_path(blob)
    blob_path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with open(blob_path, "wb") as fh:
        for piece in pieces:
            fh.write(piece)
            size += len(piece)
        fh.flush()
        os.fsync(fh.fileno())
    with store.db.tx():
        row = store.create_file(parent, path[-1], None)
        entity = store.create_entity(row, size, blob, None, uid)
        store.upgrade_placeholder(row, entity, None)
