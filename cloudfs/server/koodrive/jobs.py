"""Asynchronous batch tasks: ``POST /jobs`` (copy, delete, move, restore, empty
the recycle bin), ``GET /{job_id}`` (poll), ``GET /jobs`` (list), ``POST /cancel``.

A job does nothing when it is created.  Each poll moves it on: pending (0)
for ``job_polls_per_step`` polls, running (1) as many, then it is applied and
done (2).  ``job_polls_per_step`` 0 makes the first poll finish it; with
``job_seconds`` each state also lasts at least that long (slow jobs in time).  Each file
of the batch gets its own result in ``taskInfos`` (13000405 name taken,
13000307 into itself, 13000312 already there, 13000309 gone...); a job whose
files all failed, or that the ``job_fail_count`` switch fails, ends done with a
``taskResultCode`` 3 (2 when only some files failed) and, for the switch,
nothing applied.  The detail answer is ``data{jobInfo, taskInfos}`` with
``code`` a String (ENT GetJobDetail page).  A cancelled job (3) is never
applied.  Jobs live in memory: a restarted emulator has forgotten them.

The creation answer carries the task id in ``data`` (String), as the ENT
CreateJob page shows.  ``newFilePath`` is read as an id path whose last
segment is the target folder id (``root`` allowed): the format is unknown.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..db import User
from ..store import FileRow
from . import errors as E
from .context import KooCtx
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
        try:
            with tree.store.db.tx():
                new_id = _apply_one(rt, tree, user, job, file_id, stale)
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
    if rt.used_bytes(user) + added > rt.capacity_bytes():
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


# --- handlers -------------------------------------------------------------------------------
def _file_infos(body: dict[str, Any], require_path: bool) -> list[tuple[str, str]]:
    task_info = body.get("taskInfo")
    if not isinstance(task_info, dict):
        raise E.bad("taskInfo is invalid")
    infos = task_info.get("fileInfo") or []
    if not isinstance(infos, list) or len(infos) > 1000:
        raise E.bad("fileInfo is invalid")
    out: list[tuple[str, str]] = []
    for info in infos:
        if not isinstance(info, dict) or not isinstance(info.get("fileId"), str) or not info["fileId"]:
            raise E.bad("fileInfo.fileId is invalid")
        path = info.get("filePath") or ""
        if not isinstance(path, str) or (require_path and not path):
            raise E.bad("fileInfo.filePath is required")
        out.append((info["fileId"], path))
    return out


async def create_job(kc: KooCtx) -> dict[str, Any]:
    body, rt = kc.body, kc.rt
    task_type, action = body.get("taskType"), body.get("actionType")
    if not isinstance(task_type, int) or isinstance(task_type, bool) or not 1 <= task_type <= 7:
        raise E.bad("taskType is invalid")
    if task_type in (UNZIP, PACKAGE):
        raise E.bad("taskType is not supported by this emulator")
    allowed = ACTIONS[task_type]
    if allowed and action not in allowed:
        if action is None and len(allowed) == 1:
            action = allowed[0]
        else:
            raise E.bad("actionType is invalid")
    if not allowed and action is not None:
        raise E.bad("actionType is invalid")
    kc.tree.check_container(body, "dstContainerId")
    raw_info = body.get("taskInfo")
    task_info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    if task_type != EMPTY_BIN:
        kc.tree.check_container(task_info, "srcContainerId")
    need_path = task_type == DELETE and action == 201 and rt.switches.require_file_path
    files = _file_infos(body, need_path) if task_type != EMPTY_BIN else []
    if task_type != EMPTY_BIN and not files:
        raise E.bad("fileInfo is empty")
    for file_id, path in files:
        if path and path.rstrip("/").rsplit("/", 1)[-1] != file_id:
            raise E.bad("filePath must end with the fileId")
    target = task_info.get("newFilePath")
    if task_type in (COPY, MOVE) and (not isinstance(target, str) or not target):
        raise E.bad("newFilePath is required")
    job = Job(secrets.token_hex(16), kc.me.id, task_type, action, files, target)
    rt.jobs.add(job)
    return {"data": job.task_id}


def _job_of(kc: KooCtx, task_id: Any) -> Job:
    job = kc.rt.jobs.jobs.get(task_id) if isinstance(task_id, str) else None
    if job is None or job.user_id != kc.me.id:
        raise E.bad("the task does not exist")
    return job


async def job_detail(kc: KooCtx, job_id: str) -> dict[str, Any]:
    job = _job_of(kc, job_id)
    kc.rt.jobs.poll(job)
    return {"data": {"jobInfo": job.info(kc.rt.user_key), "taskInfos": job.results}}


async def list_jobs(kc: KooCtx) -> dict[str, Any]:
    q = kc.request.query_params
    try:
        offset, limit = int(q["offset"]), int(q["limit"])
        wanted_type = int(q["type"]) if q.get("type") else None
        wanted_status = int(q["status"]) if q.get("status") else None
    except (KeyError, ValueError):
        raise E.bad("offset and limit are required integers") from None
    if offset < 0 or not 1 <= limit <= 100:
        raise E.bad("offset/limit is invalid")
    jobs = [j for j in kc.rt.jobs.jobs.values() if j.user_id == kc.me.id
            and (wanted_type is None or j.task_type == wanted_type)
            and (wanted_status is None or j.status == wanted_status)]
    jobs.sort(key=lambda j: j.created, reverse=True)
    return {"total": len(jobs), "jobInfos": [j.info(kc.rt.user_key) for j in jobs[offset:offset + limit]]}


async def cancel_job(kc: KooCtx) -> dict[str, Any]:
    job = _job_of(kc, kc.body.get("taskId", kc.body.get("jobId")))
    if job.status in (DONE, CANCELLED):
        raise E.KooError(E.STATUS_CHANGE_FAILED)
    job.status = CANCELLED
    return {}
