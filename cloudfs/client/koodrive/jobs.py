"""KooDrive's asynchronous ``/jobs`` (copy, delete, move, empty the bin):
create one, then poll ``GET /{job_id}`` until it is done, with a bounded
wait (the client's deadline plus time per item) so no caller hangs.

A job's status runs 0 pending, 1 running, 2 done, 3 cancelled;
``taskResultCode`` 1 means every item succeeded, 2 some and 3 none, with each
item's own ``code`` in ``taskInfos``.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import trio

from cloudfs.client.koodrive.codes import ALREADY_IN_TARGET, BAD_PARAMETER, KooDriveError, code_of
from cloudfs.client.koodrive.wire import Wire
from cloudfs.client.retry import AttemptState
from cloudfs.errors import CloudfsError, NotFound, ProtocolError

log = logging.getLogger(__name__)

COPY, DELETE, MOVE, EMPTY_BIN = 1, 2, 3, 7
ACTION = {"copy": 101, "recycle": 201, "purge": 202, "move": 301, "empty": 701}
DONE, CANCELLED = 2, 3
#: first poll interval and its cap (doubling in between)
POLL_FIRST_S, POLL_MAX_S = 0.05, 1.0
#: extra time a job may take per item it works on
PER_ITEM_S = 0.5
#: how many times a job the server forgot while it was polled is created again
FORGOTTEN_AGAIN = 2


async def run_job(wire: Wire, task_type: int, action: str, task_info: dict[str, Any], *, container: str,
                  what: str, items: int = 1, ignore: frozenset[int] = frozenset({ALREADY_IN_TARGET})) -> None:
    """Create the job and wait until it is done; the first failed item's
    code is raised as a :class:`KooDriveError` (codes in ``ignore`` count
    as done).

    Creating a move, delete or empty-the-bin job again after an answer was
    lost is safe: if the first job ran, the second finds its items already
    moved (13000312, ignored) or gone (a code meaning "not found", which then
    counts as done).  A copy is sent again only if it never left (a second
    job would make a second copy).  The same holds for a job the server
    forgot while it was polled (a restart): it is created again, once or
    twice, except a copy."""
    body = {"taskType": task_type, "actionType": ACTION[action], "taskInfo": task_info, "dstContainerId": container}
    repeated = False

    async def create(state: AttemptState) -> dict[str, Any]:
        nonlocal repeated
        repeated = repeated or state.maybe_delivered
        return await wire.call_once("POST", "/jobs", what=what, json_body=body)

    for forgotten in range(FORGOTTEN_AGAIN + 1):
        answer = await wire.http.retrying(create, idempotent=task_type != COPY, what=what)
        job_id = answer.get("data")
        if isinstance(job_id, dict):
            job_id = job_id.get("taskId") or job_id.get("jobId")
        if not isinstance(job_id, str) or not job_id:
            raise ProtocolError(f"{what}: no job id in the answer")
        try:
            data, info = await _wait(wire, job_id, what, items)
        except JobForgotten as exc:
            # a move, delete or empty-the-bin job is safe to create again (see
            # above); a copy is not: a second job would make a second copy
            if task_type == COPY or forgotten == FORGOTTEN_AGAIN:
                raise exc.refusal from None
            log.info("%s: the server no longer knows job %s (%s): creating it again", what, job_id, exc.refusal)
            repeated = True
            continue
        _raise_failures(data, info, what, ignore, gone_is_done=repeated and task_type != COPY)
        return


class JobForgotten(Exception):
    """A poll's answer: the server does not know the job (it forgot it)."""

    def __init__(self, refusal: KooDriveError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


async def _wait(wire: Wire, job_id: str, what: str, items: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Poll the job until it is done: its detail and ``jobInfo``."""
    limit = wire.http.settings.deadline_s + PER_ITEM_S * items
    interval = POLL_FIRST_S
    with trio.move_on_after(limit):
        while True:
            try:
                detail = await wire.call("GET", f"/{job_id}", idempotent=True, what=f"{what} (job {job_id})")
            except KooDriveError as exc:
                # the poll names nothing but the job: "bad parameter" or "does not
                # exist" is the job id unknown (a restarted emulator forgets its
                # jobs; the real service's lifetime of a job is not documented)
                if exc.code == BAD_PARAMETER or isinstance(exc, NotFound):
                    raise JobForgotten(exc) from exc
                raise
            nested = detail.get("data")
            data: dict[str, Any] = nested if isinstance(nested, dict) else detail
            info = data.get("jobInfo") or {}
            status = int(info.get("status", 0))
            if status == CANCELLED:
                raise CloudfsError(f"{what}: the job was cancelled", errno=errno.ECANCELED)
            if status == DONE:
                return data, info
            await trio.sleep(interval)
            interval = min(interval * 2, POLL_MAX_S)
    raise CloudfsError(f"{what}: the job {job_id} did not finish within {limit:.0f} s", errno=errno.ETIMEDOUT)


def _raise_failures(data: dict[str, Any], info: dict[str, Any], what: str, ignore: frozenset[int],
                    *, gone_is_done: bool) -> None:
    def failed(code: int | str) -> bool:
        if code in (0, "0") or code in ignore:
            return False
        # a repeated job whose item is gone: the lost first one did it
        return not (gone_is_done and isinstance(KooDriveError(code), NotFound))

    failures = []
    for item in data.get("taskInfos") or []:
        code = code_of(item.get("code", 0))
        if failed(code):
            failures.append((code, str(item.get("msg") or "")))
    if not failures and int(info.get("taskResultCode") or 1) in (2, 3):
        code = code_of(info.get("resultCode") or 0)
        if failed(code):
            failures.append((code, ""))
    if failures:
        code, message = failures[0]
        log.debug("%s: %d item(s) failed, first %s", what, len(failures), code)
        raise KooDriveError(code, f"{what}: {message}" if message else what)
