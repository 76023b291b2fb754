"""KooDrive emulator: /jobs (move, copy, delete, restore, empty bin) across polls,
with the slow- and failing-job switches, cancel and listing."""

from __future__ import annotations

import time

from .koohelpers import switches

COPY, DELETE, MOVE, RESTORE, EMPTY = 1, 2, 3, 4, 7


def test_lifecycle_pending_running_done(kapi):
    src = kapi.mkdir("life-src")["id"]
    dst = kapi.mkdir("life-dst")["id"]
    fid = kapi.upload("a.txt", b"a", src)
    job = kapi.job(MOVE, 301, [fid], dst)  # the creation answer: code String, task id in data
    assert isinstance(job, str) and job
    states = [kapi.poll(job) for _ in range(4)]
    assert [s["jobInfo"]["status"] for s in states] == [0, 1, 2, 2]
    assert [s["jobInfo"]["progress"] for s in states[:3]] == [0, 50, 100]
    assert states[0]["jobInfo"]["taskType"] == 3 and states[0]["jobInfo"]["userId"] == kapi.user_id
    assert kapi.names(dst) == ["a.txt"] and kapi.names(src) == []
    assert states[2]["taskInfos"] == [{"fileId": fid, "code": 0, "msg": "success"}]


def test_nothing_happens_before_done(kapi):
    src = kapi.mkdir("lazy")["id"]
    fid = kapi.upload("b.txt", b"b", src)
    job = kapi.job(DELETE, 201, [fid])
    kapi.poll(job)
    assert kapi.names(src) == ["b.txt"]
    kapi.poll(job)
    assert kapi.names(src) == ["b.txt"]
    assert kapi.poll(job)["jobInfo"]["status"] == 2
    assert kapi.names(src) == []


def test_slow_jobs_switch(kapi):
    switches(kapi.server, job_polls_per_step=3)
    fid = kapi.upload("slow.txt", b"s")
    job = kapi.job(DELETE, 202, [fid])
    assert [kapi.poll(job)["jobInfo"]["status"] for _ in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    switches(kapi.server, job_polls_per_step=0)
    fid = kapi.upload("fast.txt", b"f")
    assert kapi.poll(kapi.job(DELETE, 202, [fid]))["jobInfo"]["status"] == 2


def test_jobs_slow_in_time(kapi):
    switches(kapi.server, job_polls_per_step=0, job_seconds=0.4)
    fid = kapi.upload("timed.txt", b"t")
    job = kapi.job(DELETE, 202, [fid])
    assert kapi.poll(job)["jobInfo"]["status"] == 0
    time.sleep(0.45)
    assert kapi.poll(job)["jobInfo"]["status"] == 1
    time.sleep(0.45)
    assert kapi.poll(job)["jobInfo"]["status"] == 2


def test_failing_jobs_switch(kapi):
    switches(kapi.server, job_fail_count=1)
    fid = kapi.upload("survivor.txt", b"s")
    result = kapi.run_job(DELETE, 202, [fid])
    assert result["jobInfo"]["status"] == 2 and result["jobInfo"]["taskResultCode"] == 3
    assert result["jobInfo"]["resultCode"] == 13000409
    assert kapi.detail(fid)["fileName"] == "survivor.txt"  # not applied
    assert kapi.run_job(DELETE, 202, [fid])["jobInfo"]["taskResultCode"] == 1  # only the next one failed


def test_copy_folder_tree(kapi):
    src = kapi.mkdir("copy-src")["id"]
    sub = kapi.mkdir("sub", src)["id"]
    kapi.upload("x.bin", b"x" * 100, sub)
    dst = kapi.mkdir("copy-dst")["id"]
    used = int(kapi.space()["spaceUsed"])
    result = kapi.run_job(COPY, 101, [src], dst)
    info = result["taskInfos"][0]
    assert info["code"] == 0 and info["newFileId"] != src
    assert kapi.names(dst) == ["copy-src"]
    copied_sub = kapi.ls(info["newFileId"])[0]["id"]
    copied = kapi.ls(copied_sub)[0]
    assert copied["fileName"] == "x.bin" and kapi.download(copied["id"]) == b"x" * 100
    assert int(kapi.space()["spaceUsed"]) == used + 100
    assert kapi.names(sub) == ["x.bin"]  # the source stays


def test_move_errors_per_file(kapi):
    top = kapi.mkdir("errs")["id"]
    inner = kapi.mkdir("inner", top)["id"]
    fid = kapi.upload("same.txt", b"1", top)
    kapi.upload("same.txt", b"2", inner)
    assert kapi.run_job(MOVE, 301, [top], inner)["taskInfos"][0]["code"] == 13000307  # into itself
    assert kapi.run_job(MOVE, 301, [fid], top)["taskInfos"][0]["code"] == 13000312  # already there
    conflict = kapi.run_job(MOVE, 301, [fid], inner)
    assert conflict["taskInfos"][0]["code"] == 13000405 and conflict["jobInfo"]["taskResultCode"] == 3
    movable = kapi.upload("movable.txt", b"m", top)
    partial = kapi.run_job(MOVE, 301, [movable, "nope"], inner)
    assert partial["jobInfo"]["taskResultCode"] == 2 and partial["jobInfo"]["resultCode"] == 13000309
    assert "movable.txt" in kapi.names(inner)
    assert kapi.run_job(MOVE, 301, ["nope"], inner)["taskInfos"][0]["code"] == 13000309
    switches(kapi.server, job_conflict="rename")
    assert kapi.run_job(MOVE, 301, [fid], inner)["taskInfos"][0]["code"] == 0
    assert len(kapi.names(inner)) == 3 and kapi.names(top) == ["inner"]


def test_recycle_restore_and_empty(kapi):
    top = kapi.mkdir("bin-test")["id"]
    folder = kapi.mkdir("gone", top)["id"]
    kapi.upload("inside.txt", b"i", folder)
    assert kapi.run_job(DELETE, 201, [folder])["jobInfo"]["taskResultCode"] == 1
    assert kapi.names(top) == []
    binned = {f["fileName"]: f for f in kapi.ls(type=1)}
    assert binned["gone"]["recycled"] is True and "recycledTime" in binned["gone"]
    assert [f["fileName"] for f in kapi.ls(folder, type=1)] == ["inside.txt"]
    assert kapi.error("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder}) == 13000404
    assert kapi.run_job(DELETE, 201, [folder])["taskInfos"][0]["code"] == 13000306  # already recycled
    assert kapi.run_job(RESTORE, None, [folder])["jobInfo"]["taskResultCode"] == 1
    assert kapi.names(top) == ["gone"] and kapi.names(folder) == ["inside.txt"]
    kapi.run_job(DELETE, 201, [folder])
    used = int(kapi.space()["spaceUsed"])
    assert kapi.run_job(EMPTY, 701, [])["jobInfo"]["status"] == 2
    assert kapi.ls(type=1) == [] and int(kapi.space()["spaceUsed"]) <= used - 1


def test_logical_delete_needs_file_path(kapi):
    fid = kapi.upload("path.txt", b"p")
    body = {"taskType": 2, "actionType": 201, "dstContainerId": kapi.container,
            "taskInfo": {"srcContainerId": kapi.container, "fileInfo": [{"fileId": fid}]}}
    assert kapi.error("POST", "/jobs", json=body) == "13000102"
    body["taskInfo"]["fileInfo"][0]["filePath"] = "/root/other"
    assert kapi.error("POST", "/jobs", json=body) == "13000102"
    for bad in ({"taskType": 9}, {"taskType": 2, "actionType": 301}, {"taskType": 3, "actionType": 301}):
        assert kapi.error("POST", "/jobs", json={**body, **bad}) == "13000102"


def test_cancel_and_list(kapi):
    fid = kapi.upload("keep.txt", b"k")
    created = kapi.ok("POST", "/jobs", json={
        "taskType": 2, "actionType": 202, "dstContainerId": kapi.container,
        "taskInfo": {"srcContainerId": kapi.container, "fileInfo": [{"fileId": fid, "filePath": f"/{fid}"}]}})
    assert created["code"] == "0" and isinstance(created["data"], str)  # as the CreateJob page shows
    job = created["data"]
    listed = kapi.ok("GET", "/jobs", params={"offset": 0, "limit": 10, "status": 0})
    assert job in [j["taskId"] for j in listed["jobInfos"]] and listed["total"] >= 1
    assert kapi.ok("POST", "/cancel", json={"taskId": job})["code"] == "0"
    assert kapi.poll(job)["jobInfo"]["status"] == 3
    assert kapi.detail(fid)["fileName"] == "keep.txt"
    assert kapi.error("POST", "/cancel", json={"taskId": job}) == "13000403"
    assert kapi.error("GET", "/jobs", params={"offset": 0, "limit": 101}) == "13000102"
    assert kapi.error("GET", "/unknown-job-id") == "13000102"
