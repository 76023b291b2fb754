"""Upload tasks of one emulator (the handlers are in :mod:`.uploads`): the part
plan fixed at ``files/create``, the parts received, the blob being filled.
Kept in the data directory (table ``kd_uploads``) until completed."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import KooRuntime

SCHEMA = "CREATE TABLE IF NOT EXISTS kd_uploads (id TEXT PRIMARY KEY, data TEXT NOT NULL)"


@dataclass
class Part:
    number: int
    size: int
    offset: int
    hash_ctx: str = ""


@dataclass
class Task:
    upload_id: str
    file_row: int
    user_id: int
    length: int
    sha256: str
    blob: str
    parallel: bool
    parts: list[Part]
    received: list[int] = field(default_factory=list)
    #: editedTime given at create (µs), else the completion time is the file's
    edited_us: int | None = None
    created: float = field(default_factory=time.time)
    #: the name the file takes at complete; until then its row has a hidden
    #: placeholder name (switch ``pending_holds_name`` off), so an unfinished
    #: task, never cancelled, holds no name
    name: str = ""


class Uploads:
    def __init__(self, rt: KooRuntime) -> None:
        self.rt = rt
        self.conn = rt.state.db.conn
        self.conn.execute(SCHEMA)
        self.tasks: dict[str, Task] = {}
        for (data,) in self.conn.execute("SELECT data FROM kd_uploads"):
            raw = json.loads(data)
            raw["parts"] = [Part(**p) for p in raw["parts"]]
            task = Task(**raw)
            self.tasks[task.upload_id] = task

    def save(self, task: Task) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kd_uploads(id, data) VALUES(?,?)",
                          (task.upload_id, json.dumps(asdict(task))))

    def drop(self, task: Task) -> None:
        self.tasks.pop(task.upload_id, None)
        self.conn.execute("DELETE FROM kd_uploads WHERE id=?", (task.upload_id,))

    def by_file(self, file_row: int) -> Task | None:
        return next((t for t in self.tasks.values() if t.file_row == file_row), None)
