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

import secrets
from typing import Any

from . import errors as E
from .context import KooCtx
from .jobstore import ACTIONS, CANCELLED, COPY, DELETE, DONE, EMPTY_BIN, MOVE, PACKAGE, UNZIP, Job


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
    kc.jobs.add(job)
    return {"data": job.task_id}


def _job_of(kc: KooCtx, task_id: Any) -> Job:
    job = kc.jobs.jobs.get(task_id) if isinstance(task_id, str) else None
    if job is None or job.user_id != kc.me.id:
        raise E.bad("the task does not exist")
    return job


async def job_detail(kc: KooCtx, job_id: str) -> dict[str, Any]:
    job = _job_of(kc, job_id)
    kc.jobs.poll(job)
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
    jobs = [j for j in kc.jobs.jobs.values() if j.user_id == kc.me.id
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
