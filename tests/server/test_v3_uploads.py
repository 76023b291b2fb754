"""v3 dialect: upload sessions, strictly ordered chunks, cancellation, PUT /file/update."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from cloudfs.server.testing import start_server

from .v3helpers import Api3

CHUNK = 1 << 20  # the servers below use 1 MiB chunks


@pytest.fixture(scope="module")
def small_chunks(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("v3-chunks"), dialect="v3", chunk_size=CHUNK, capacity=64 << 20) as srv:
        yield srv


@pytest.fixture
def capi(small_chunks):
    with Api3(small_chunks) as api:
        yield api
    small_chunks.faults.clear()


def test_session_shape(capi):
    before = time.time()
    body = capi.session("/up", "a.bin", 10)
    assert body["code"] == 0 and body["msg"] == ""
    data = body["data"]
    assert set(data) == {"sessionID", "chunkSize", "expires"}
    assert data["chunkSize"] == CHUNK
    assert before + 86400 - 2 <= data["expires"] <= time.time() + 86400 + 1
    # the parent folder is created with the placeholder; the placeholder is not listed
    assert capi.names("/up") == []
    capi.call("DELETE", f"/file/upload/{data['sessionID']}")


def test_multi_chunk_upload(capi):
    data = os.urandom(2 * CHUNK + 1234)
    used = capi.storage()["used"]
    capi.upload("/up/multi.bin", data, last_modified=1714481625683)
    obj = capi.objects("/up")["multi.bin"]
    assert obj["size"] == len(data) and obj["date"].startswith("2024-04-30T") and ".683" in obj["date"]
    assert obj["create_date"] != obj["date"]
    assert capi.download("/up/multi.bin").content == data
    assert capi.storage()["used"] == used + len(data)


def test_zero_byte_upload(capi):
    sid = capi.session("/up", "empty.bin", 0)["data"]["sessionID"]
    assert capi.chunk(sid, 0, b"") == {"code": 0, "msg": ""}
    assert capi.objects("/up")["empty.bin"]["size"] == 0
    assert capi.chunk(sid, 0, b"") == {"code": 40011, "msg": ""}  # the session ended


def test_chunks_strictly_in_order(capi):
    data = os.urandom(3 * CHUNK)
    sid = capi.session("/order", "o.bin", len(data))["data"]["sessionID"]
    assert capi.chunk(sid, 1, data[CHUNK:2 * CHUNK]) == {"code": 40012, "msg": "Chunk must be uploaded in order"}
    assert capi.chunk(sid, 0, data[:CHUNK]) == {"code": 0, "msg": ""}
    assert capi.chunk(sid, 2, data[2 * CHUNK:]) == {"code": 40012, "msg": "Chunk must be uploaded in order"}
    used = capi.storage()["used"]
    assert capi.chunk(sid, 1, data[CHUNK:2 * CHUNK]) == {"code": 0, "msg": ""}
    assert capi.storage()["used"] == used + CHUNK  # usage follows the stored bytes
    # re-sending an earlier chunk is accepted and resets the stored size to its end
    assert capi.chunk(sid, 0, data[:CHUNK]) == {"code": 0, "msg": ""}
    assert capi.storage()["used"] == used
    assert capi.chunk(sid, 2, data[2 * CHUNK:]) == {"code": 40012, "msg": "Chunk must be uploaded in order"}
    assert capi.chunk(sid, 1, data[CHUNK:2 * CHUNK]) == {"code": 0, "msg": ""}
    assert capi.chunk(sid, 2, data[2 * CHUNK:]) == {"code": 0, "msg": ""}
    assert capi.download("/order/o.bin").content == data


@pytest.mark.parametrize("index,length", [(0, CHUNK - 1), (0, CHUNK + 1), (1, 99), (1, 101)])
def test_exact_content_length(capi, index, length):
    sid = capi.session("/cl", f"c{index}-{length}.bin", CHUNK + 100)["data"]["sessionID"]
    if index:
        assert capi.chunk(sid, 0, b"x" * CHUNK)["code"] == 0
    expected = CHUNK if index == 0 else 100
    assert capi.chunk(sid, index, b"y" * length) == \
        {"code": 40013, "msg": f"Invalid Content-Length (expected: {expected})"}
    capi.call("DELETE", f"/file/upload/{sid}")


def test_chunked_transfer_has_no_content_length(capi):
    sid = capi.session("/cl", "stream.bin", 3)["data"]["sessionID"]

    def body():
        yield b"abc"

    resp = capi.request("POST", f"/file/upload/{sid}/0", content=body())
    assert resp.json() == {"code": 40013, "msg": "Invalid Content-Length (expected: 3)"}
    capi.call("DELETE", f"/file/upload/{sid}")


def test_chunk_errors(capi):
    assert capi.chunk("no-such-session", 0, b"x") == {"code": 40011, "msg": ""}
    sid = capi.session("/ce", "e.bin", 5)["data"]["sessionID"]
    assert capi.chunk(sid, -1, b"x") == {"code": 40001, "msg": "Index too short"}
    assert capi.chunk(sid, "abc", b"x") == {"code": 40001, "msg": "Parameter error"}
    with Api3(capi.server, login=False) as anon:
        assert anon.chunk(sid, 0, b"12345") == {"code": 401, "msg": "Login required"}
    capi.call("DELETE", f"/file/upload/{sid}")


@pytest.mark.parametrize("body,code,msg", [
    ({"size": 1, "name": "n", "policy_id": "x"}, 40001, "Path cannot be empty"),
    ({"path": "/", "size": 1, "policy_id": "x"}, 40001, "Name cannot be empty"),
    ({"path": "/", "size": 1, "name": "n"}, 40001, "PolicyID cannot be empty"),
    ({"path": "/", "size": -1, "name": "n", "policy_id": "x"}, 40001, "JSON marshall error"),
    ({"path": "/", "size": 1.5, "name": "n", "policy_id": "x"}, 40001, "JSON marshall error"),
    ({"path": "/", "size": 1, "name": "n", "policy_id": "junk"}, 40035, ""),
])
def test_session_binding_errors(capi, body, code, msg):
    assert capi.call("PUT", "/file/upload", json=body) == {"code": code, "msg": msg}


def test_session_policy_and_name_errors(capi):
    folder_id = capi.folder_id("/")  # a hashid, but of a folder, not a policy
    assert capi.session("/", "n.bin", 1, policy_id=folder_id)["code"] == 40035
    from cloudfs.server.common.db import Database
    from cloudfs.server.common.ids import POLICY, IdCodec

    db = Database(capi.server.data_dir)
    try:
        other_policy = IdCodec(db.get_meta("hashid_salt") or "").encode(2, POLICY)
    finally:
        db.close()
    assert capi.session("/", "n.bin", 1, policy_id=other_policy) == \
        {"code": 40006, "msg": "存储策略发生变化，请刷新文件列表并重新添加此任务"}
    assert capi.session("/", "bad*name", 1) == {"code": 40052, "msg": "Invalid object name"}
    assert capi.session("/", "n.bin", 65 << 20) == {"code": 40051, "msg": "Insufficient capacity"}
    assert capi.session("rel", "n.bin", 1) == {"code": 40053, "msg": "Root protected"}


def test_session_name_clashes(capi):
    capi.upload("/clash/done.bin", b"d")
    assert capi.session("/clash", "done.bin", 1) == {"code": 40004, "msg": "Object existed"}
    sid = capi.session("/clash", "pending.bin", 5)["data"]["sessionID"]
    assert capi.session("/clash", "pending.bin", 5) == {"code": 40054, "msg": "Upload session existed"}
    capi.mkdir("/clash/folder")
    assert capi.session("/clash", "folder", 1) == {"code": 40004, "msg": "Object existed"}
    assert capi.call("DELETE", f"/file/upload/{sid}") == {"code": 0, "msg": ""}
    assert capi.session("/clash", "pending.bin", 5)["code"] == 0


def test_capacity_is_checked_per_chunk(capi):
    capi.server.faults.set_capacity(capi.storage()["used"] + 2 * CHUNK)
    sid = capi.session("/cap", "big.bin", 2 * CHUNK)["data"]["sessionID"]  # nothing is reserved
    assert capi.session("/cap", "other.bin", 2 * CHUNK + 1) == {"code": 40051, "msg": "Insufficient capacity"}
    capi.server.faults.set_capacity(capi.storage()["used"] + 10)
    assert capi.chunk(sid, 0, b"z" * CHUNK) == {"code": 40051, "msg": "Insufficient capacity"}
    capi.server.faults.set_capacity(None)
    assert capi.chunk(sid, 0, b"z" * CHUNK)["code"] == 0
    capi.call("DELETE", f"/file/upload/{sid}")


def test_cancel_one_and_all(capi):
    s1 = capi.session("/cancel", "one.bin", 2 * CHUNK)["data"]["sessionID"]
    s2 = capi.session("/cancel", "two.bin", 10)["data"]["sessionID"]
    capi.chunk(s1, 0, b"q" * CHUNK)
    used = capi.storage()["used"]
    assert capi.call("DELETE", f"/file/upload/{s1}") == {"code": 0, "msg": ""}
    assert capi.storage()["used"] == used - CHUNK
    assert capi.call("DELETE", f"/file/upload/{s1}") == {"code": 40011, "msg": ""}
    assert capi.chunk(s1, 1, b"q" * CHUNK) == {"code": 40011, "msg": ""}
    assert capi.call("DELETE", "/file/upload") == {"code": 0, "msg": ""}
    assert capi.chunk(s2, 0, b"q" * 10) == {"code": 40011, "msg": ""}
    assert capi.session("/cancel", "two.bin", 10)["code"] == 0
    assert capi.call("DELETE", "/file/upload") == {"code": 0, "msg": ""}


def test_expired_session_keeps_placeholder_until_deleted(tmp_path):
    with start_server(tmp_path, dialect="v3", extra_args=["--upload-session-ttl", "1"]) as srv, Api3(srv) as api:
        sid = api.session("/", "slow.bin", 4)["data"]["sessionID"]
        time.sleep(1.3)
        assert api.chunk(sid, 0, b"abcd") == {"code": 40011, "msg": ""}
        # the placeholder stays until the collector runs or the session is deleted by id
        assert api.session("/", "slow.bin", 4) == {"code": 40054, "msg": "Upload session existed"}
        assert api.call("DELETE", f"/file/upload/{sid}") == {"code": 0, "msg": ""}
        assert api.session("/", "slow.bin", 4)["code"] == 0


def test_dropped_chunk_truncates_back(small_chunks, capi):
    data = os.urandom(2 * CHUNK)
    sid = capi.session("/drop", "d.bin", len(data))["data"]["sessionID"]
    assert capi.chunk(sid, 0, data[:CHUNK])["code"] == 0
    small_chunks.faults.set(drop_rate=1.0, drop_after_bytes=1000, path_regex="/file/upload/", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        capi.request("POST", f"/file/upload/{sid}/1", content=data[CHUNK:])
    assert small_chunks.faults.stats()["drop_request"] == 1
    assert capi.chunk(sid, 1, data[CHUNK:]) == {"code": 0, "msg": ""}
    assert capi.download("/drop/d.bin").content == data


def test_update_content(capi):
    capi.upload("/upd/f.txt", b"old content")
    fid = capi.id_of("/upd/f.txt")
    before = capi.objects("/upd")["f.txt"]
    used = capi.storage()["used"]
    assert capi.call("PUT", f"/file/update/{fid}", content=b"new!") == {"code": 0, "msg": ""}
    after = capi.objects("/upd")["f.txt"]
    assert after["id"] == fid and after["size"] == 4 and after["date"] != before["date"]
    assert capi.download("/upd/f.txt").content == b"new!"
    assert capi.storage()["used"] == used - 7
    assert capi.call("PUT", f"/file/update/{fid}", content=b"") == {"code": 0, "msg": ""}
    assert capi.download("/upd/f.txt").content == b""


def test_update_errors(capi):
    capi.touch("/upde/e.txt")
    fid = capi.id_of("/upde/e.txt")
    assert capi.call("PUT", f"/file/update/{capi.folder_id('/upde')}", content=b"x") == \
        {"code": 40001, "msg": "Failed to parse object ID"}
    assert capi.call("PUT", "/file/update/junk", content=b"x") == {"code": 40001, "msg": "Failed to parse object ID"}
    capi.delete(items=[fid])
    assert capi.call("PUT", f"/file/update/{fid}", content=b"x") == {"code": 40044, "msg": ""}
    capi.touch("/upde/cap.txt")
    capi.server.faults.set_capacity(capi.storage()["used"] + 3)
    cap_id = capi.id_of("/upde/cap.txt")
    assert capi.call("PUT", f"/file/update/{cap_id}", content=b"toolong") == {"code": 40051,
                                                                              "msg": "Insufficient capacity"}
    assert capi.call("PUT", f"/file/update/{cap_id}", content=b"ok") == {"code": 0, "msg": ""}


def test_update_broken_body_empties_file(small_chunks, capi):
    capi.upload("/updrop/f.bin", b"precious")
    fid = capi.id_of("/updrop/f.bin")
    small_chunks.faults.set(drop_rate=1.0, drop_after_bytes=10, path_regex="/file/update/", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        capi.request("PUT", f"/file/update/{fid}", content=b"y" * 100_000)
    for _ in range(50):  # the server notices the disconnect asynchronously
        if capi.objects("/updrop")["f.bin"]["size"] == 0:
            break
        time.sleep(0.05)
    # Cloudreve 3's AfterUploadCanceled hooks: clean the content, size 0
    assert capi.objects("/updrop")["f.bin"]["size"] == 0
    assert capi.download("/updrop/f.bin").content == b""
