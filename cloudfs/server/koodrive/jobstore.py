"""The batch tasks of one emulator and how each is applied (the ``/jobs`` handlers are in :mod:`.jobs`).

A job does nothing when it is created.  Each poll moves it on: pending (0)
for ``job_polls_per_step`` polls, running (1) as many, then it is applied and
done (2).  See :mod:`.jobs` for the wire shapes.
"""


from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..db import User
from ..store import FileRow
from . import errors as E
from .tree import RECYCLED_FROM, Tree

if TYPE_CHECKING:
    from .runtime import KooRuntime

COPY, DELETE, MOVE, RESTORE, UNZIP, PACKAGE, EMPTY_BIN = range(1, 8)
ACTIONS = {COPY: (101,), DELETE: (201, 202), MOVE: (301,), RESTORE: (), EMPTY_BIN: (701,)}
PENDING, RUNNING, DONE, CANCELLED = range(4)
ALL_OK, PARTIAL, ALL_FAILED = 1, 2, 3


@dataclass
class Job:
    task_id: str
    user_id: int
    task_type: int
    action_type: int | None
    files: list[tuple[str, str]]
    target: str | None
    created: float = field(default_factory=time.time)
    status: int = PENDING
    polls: int = 0
    #: 0 until done; then 1 all succeeded, 2 partially failed, 3 all failed (the values of the
    #: sibling "Querying an Asynchronous Task" page: the batch-task page gives none)
    task_result_code: int = 0
    result_code: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    def info(self, user_key: str) -> dict[str, Any]:
        """JobDetailInfo (ENT GetJobDetail page)."""
        progress = {PENDING: 0, RUNNING: 50, DONE: 100, CANCELLED: 0}[self.status]
        return {"taskId": self.task_id, "taskName": f"task-{self.task_type}", "userId": user_key,
                "taskType": self.task_type, "actionType": self.action_type, "status": self.status,
                "taskResultCode": self.task_result_code, "resultCode": self.result_code, "progress": progress}


class Jobs:
    def __init__(self, rt: KooRuntime) -> None:
        self.rt = rt
        self.jobs: dict[str, Job] = {}

    def add(self, job: Job) -> None:
        self.jobs[job.task_id] = job
        if len(self.jobs) > 10_000:  # bounded: forget the oldest finished ones
            for old in sorted(self.jobs.values(), key=lambda j: j.created)[:1000]:
                if old.status in (DONE, CANCELLED):
                    del self.jobs[old.task_id]

    def poll(self, job: Job) -> None:
        if job.status in (DONE, CANCELLED):
            return
        job.polls += 1
        sw = self.rt.switches
        step = sw.job_polls_per_step
        stage = DONE if step <= 0 else min((job.polls - 1) // step, DONE)
        if sw.job_seconds > 0:  # slow jobs in time too: each state lasts at least job_seconds
            stage = min(stage, int((time.time() - job.created) // sw.job_seconds))
        if stage == DONE:
            self._finish(job)
        else:
            job.status = stage

    def _finish(self, job: Job) -> None:
        sw = self.rt.switches
        user = self.rt.user
        if sw.job_fail_count > 0:
            sw.job_fail_count -= 1
            job.status, job.task_result_code, job.result_code = DONE, ALL_FAILED, sw.job_fail_code
            job.results = [{"fileId": fid, "code": sw.job_fail_code, "msg": E.MESSAGES.get(sw.job_fail_code, "")}
                           for fid, _ in job.files]
            return
        job.results = apply(self.rt, user, job)
        failed = [r for r in job.results if r["code"] != 0]
        job.status = DONE
        job.task_result_code = ALL_OK if not failed else (ALL_FAILED if len(failed) == len(job.results) else PARTIAL)
        if failed:
            job.result_code = failed[0]["code"]


# --- applying a job ----------------------------------------------------------------------------
def apply(rt: KooRuntime, user: User, job: Job) -> list[dict[str, Any]]:
    tree = Tree(rt)
    results: list[dict[str, Any]] = []
    stale: list[str] = []
    if job.task_type == EMPTY_BIN:
        with tree.store.db.tx():
            stale += tree.purge(tree.recycled(user))
        tree.store.unlink_blobs(stale)
        return results
    for file_id, _ in job.files:
        result: dict[str, Any] = {"fileId": file_id, "code": 0, "msg": "success"}
        freed: list[str] = []  # blobs to unlink only once the transaction committed
        try:
            with tree.store.db.tx():
                new_id = _apply_one(rt, tree, user, job, file_id, freed)
            stale += freed
            if new_id is not None:
                result["newFileId"] = new_id
        except E.KooError as exc:
            result.update(code=exc.code, msg=exc.msg)
        results.append(result)
    tree.store.unlink_blobs(stale)
    return results


def _target(tree: Tree, user: User, job: Job) -> FileRow:
    raw = (job.target or "").rstrip("/").rsplit("/", 1)[-1] or "root"
    try:
        return tree.row(user, raw, folder=True)
    except E.KooError as exc:
        raise E.KooError(E.BAD_TARGET, exc.msg) from None


def _apply_one(rt: KooRuntime, tree: Tree, user: User, job: Job, file_id: str, stale: list[str]) -> str | None:
    store = tree.store
    if job.task_type == RESTORE:
        row = tree.row(user, file_id, live=False)
        meta = tree.meta(row)
        if row.parent_id is not None or RECYCLED_FROM not in meta:
            raise E.KooError(E.NOT_RECYCLED)
        origin = store.get(int(meta[RECYCLED_FROM])) if meta[RECYCLED_FROM].isdigit() else None
        if origin is None or not tree.is_live(origin):
            origin = tree.root(user)
        tree.unrecycle(row, origin, tree.free_name(origin, row.name, row.is_folder, 2))
        return None
    if job.task_type == DELETE:
        row = tree.row(user, file_id, live=False)
        if row.parent_id is None and row.name == "":
            raise E.bad("the root cannot be deleted")
        live = tree.is_live(row)
        if job.action_type == 201:
            if not live:
                raise E.KooError(E.ALREADY_RECYCLED)
            tree.recycle(row)
        else:
            stale += tree.purge([row])
        return None
    row = tree.row(user, file_id)
    if row.parent_id is None:
        raise E.bad("the root cannot be moved or copied")
    target = _target(tree, user, job)
    if store.is_descendant_or_self(target, row.id):
        raise E.KooError(E.NESTED_MOVE)
    if job.task_type == MOVE and row.parent_id == target.id:
        raise E.KooError(E.ALREADY_IN_TARGET)
    tree.check_depth(target, tree.subtree_height(row))
    name = tree.free_name(target, row.name, row.is_folder, 2 if rt.switches.job_conflict == "rename" else 3)
    if job.task_type == MOVE:
        store.conn.execute("UPDATE files SET parent_id=?, name=? WHERE id=?", (target.id, name, row.id))
        return None
    return tree.fid(_copy(rt, tree, user, row, target, name))


def _copy(rt: KooRuntime, tree: Tree, user: User, row: FileRow, target: FileRow, name: str) -> FileRow:
    store = tree.store
    rows = store.descendants([row])
    added = sum(r.size for r in rows if not r.is_folder)
    if tree.used_bytes(user) + added > rt.capacity_bytes():
        raise E.KooError(E.NO_SPACE)
    assert row.parent_id is not None  # the root is never copied
    created = store.copy_level([dataclasses.replace(row, name=name)], {row.parent_id: target})
    top = created[row.id]
    level = [row] if row.is_folder else []
    dst_of = {row.id: top}
    while level:
        kids = [k for parent in level for k in tree.children(parent)]
        if not kids:
            break
        made = store.copy_level(kids, dst_of)
        dst_of = {k.id: made[k.id] for k in kids if k.is_folder}
        level = [k for k in kids if k.is_folder]
    return top
