"""KooDrive emulator: multipart uploads (part rules, SHA-256 at complete,
rapidUpload) and pre-signed downloads (expiry, Range, the Range switch)."""

from __future__ import annotations

import hashlib
import os
import time

import httpx
import pytest

from .koohelpers import MIB, KooApi, switches

BIG = os.urandom(11 * MIB + 123)  # three sequential parts of 5 MiB, 5 MiB, 1 MiB+123


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parts(*sizes: int, ctx: bool = False) -> list[dict]:
    return [{"partNumber": i + 1, "partSize": s, **({"hashCtx": "ab" * 32} if ctx and i else {})}
            for i, s in enumerate(sizes)]


def test_multipart_upload_round_trip(kapi):
    created = kapi.create("big.bin", BIG)
    assert created["rapidUpload"] is False and created["exist"] is False and created["uploadId"]
    plan = created["multiParts"]
    assert [(p["partNumber"], p["partSize"], p["partOffset"]) for p in plan] == [
        (1, 5 * MIB, 0), (2, 5 * MIB, 5 * MIB), (3, MIB + 123, 10 * MIB)]
    assert "X-Amz-Expires=3600" in plan[0]["uploadUrl"] and "content-length%3Bhost" in plan[0]["uploadUrl"]
    # the file is invisible until complete
    assert "big.bin" not in kapi.names()
    for part in reversed(plan):  # any order
        resp = kapi.http.put(part["uploadUrl"], content=BIG[part["partOffset"]:part["partOffset"] + part["partSize"]])
        assert resp.status_code == 200 and resp.headers["etag"].startswith('"')
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"], "sha256": sha(BIG)})
    assert kapi.detail(created["fileId"])["size"] == len(BIG)
    assert kapi.download(created["fileId"]) == BIG


def test_client_plan_and_upload_urls(kapi):
    data = os.urandom(5 * MIB + 10)
    created = kapi.create("planned.bin", data, multiParts=parts(5 * MIB, 10))
    assert [p["partSize"] for p in created["multiParts"]] == [5 * MIB, 10]
    fresh = kapi.ok("POST", "/files/multipart/uploadUrl",
                    json={"fileId": created["fileId"], "multiParts": [{"partNumber": 2, "partSize": 10}]})
    assert fresh["multiParts"][0]["uploadUrl"] != created["multiParts"][1]["uploadUrl"]
    kapi.http.put(created["multiParts"][0]["uploadUrl"], content=data[:5 * MIB]).raise_for_status()
    kapi.http.put(fresh["multiParts"][0]["uploadUrl"], content=data[5 * MIB:]).raise_for_status()
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
    assert kapi.download(created["fileId"]) == data
    assert kapi.error("POST", "/files/multipart/uploadUrl",
                      json={"fileId": created["fileId"], "multiParts": [{"partNumber": 1}]}) == 13000401


@pytest.mark.parametrize("plan,length", [
    (parts(4 * MIB, 10), 4 * MIB + 10),  # a part below 5 MiB before the last
    (parts(5 * MIB, 10), 5 * MIB + 11),  # does not cover the file
    ([{"partNumber": 2, "partSize": 10}], 10),  # does not start at 1
    (parts(*([5 * MIB] * 10_001)), 10_001 * 5 * MIB),  # more than 10,000 parts
    (parts(5 * MIB + 1, 10, ctx=True), 5 * MIB + 11),  # parallel: not a multiple of 64
    (parts(5 * MIB, 5 * MIB, 10, ctx=True)[:1] + [{"partNumber": 2, "partSize": 5 * MIB},
                                                   {"partNumber": 3, "partSize": 10, "hashCtx": "ab" * 32}],
     10 * MIB + 10),  # parallel: part 2 lacks hashCtx
])
def test_part_rules(kapi, plan, length):
    body = {"fileName": "rules.bin", "fileType": "0", "parentFolder": ["root"], "sha256": "0" * 64,
            "length": length,
            "uploadMode": "multipart", "uploadType": 1, "autoRename": 2, "multiParts": plan,
            "containerId": kapi.container}
    assert kapi.error("POST", "/files/create", json=body) == 13000102


def test_parallel_plan_with_hash_ctx(kapi):
    data = os.urandom(5 * MIB + 64)
    created = kapi.create("parallel.bin", data, multiParts=parts(5 * MIB, 64, ctx=True))
    assert created["multiParts"][1]["hashCtx"] == "ab" * 32
    bad_ctx = [{"partNumber": 1, "partSize": 5 * MIB}, {"partNumber": 2, "partSize": 64, "hashCtx": "xyz"}]
    assert kapi.error("POST", "/files/create", json={
        "fileName": "p2.bin", "fileType": "0", "parentFolder": ["root"], "sha256": sha(data), "length": len(data),
        "multiParts": bad_ctx, "containerId": kapi.container}) == 13000102


def test_create_validation(kapi):
    base = {"fileName": "v.bin", "fileType": "0", "parentFolder": ["root"], "sha256": "1" * 64, "length": 1,
            "containerId": kapi.container}
    for bad in ({"sha256": "abc"}, {"length": -1}, {"length": 201 * (1 << 30)}, {"uploadType": 2},
                {"uploadMode": "content"}, {"fileName": "a|b"}, {"fileName": " "}, {"autoRename": 7},
                {"fileType": None}, {"fileType": "10"}, {"uploadMode": "put", "length": 6 * (1 << 30)}):
        body = {k: v for k, v in {**base, **bad}.items() if v is not None}
        assert kapi.error("POST", "/files/create", json=body) == 13000102, bad
    assert kapi.error("POST", "/files/create", json={**base, "parentFolder": ["nope"]}) == 13000309


def test_put_mode_and_client_file_type(kapi):
    data = os.urandom(100)
    created = kapi.create("put.doc", data, uploadMode="put", fileType="doc", sha256=None)
    assert [(p["partNumber"], p["partSize"]) for p in created["multiParts"]] == [(1, 100)]
    kapi.put_parts(created, data)
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})  # no sha256 anywhere: not checked
    item = kapi.detail(created["fileId"])
    assert item["fileType"] == "doc" and kapi.download(created["fileId"]) == data


def test_sha256_mismatch_at_complete(kapi):
    data = b"the real content"
    created = kapi.create("liar.bin", data, sha256=sha(b"something else"))
    kapi.put_parts(created, data)
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000402
    assert "liar.bin" not in kapi.names()
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000401
    # a sha256 given at complete is checked too
    created = kapi.create("liar2.bin", data)
    kapi.put_parts(created, data)
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"], "sha256": "2" * 64}) == 13000402


def test_complete_needs_every_part(kapi):
    data = os.urandom(5 * MIB + 1)
    created = kapi.create("half.bin", data)
    kapi.http.put(created["multiParts"][0]["uploadUrl"], content=data[:5 * MIB]).raise_for_status()
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000409
    assert kapi.error("POST", "/files/complete", json={"fileId": "nope"}) == 13000401


def test_part_put_after_complete_is_no_such_upload(kapi):
    data = b"done already"
    created = kapi.create("done.bin", data)
    kapi.put_parts(created, data)
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
    resp = kapi.http.put(created["multiParts"][0]["uploadUrl"], content=data)
    assert resp.status_code == 404 and b"NoSuchUpload" in resp.content


def test_part_put_must_have_the_signed_length(kapi):
    data = b"0123456789"
    created = kapi.create("len.bin", data)
    url = created["multiParts"][0]["uploadUrl"]
    resp = kapi.http.put(url, content=data + b"x")
    assert resp.status_code == 403 and b"SignatureDoesNotMatch" in resp.content
    resp = kapi.http.put(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), content=data)
    assert resp.status_code == 403
    kapi.http.put(url, content=data).raise_for_status()


def test_rapid_upload_and_skip(kapi):
    data = b"known content " * 100
    first = kapi.upload("known.txt", data)
    again = kapi.create("copy-of-known.txt", data)
    assert again["rapidUpload"] is True and again["uploadId"] == "" and again["multiParts"] == []
    assert kapi.download(again["fileId"]) == data and again["fileId"] != first
    skipped = kapi.create("known.txt", data, autoRename=4)
    assert skipped["exist"] is True and skipped["fileId"] == first
    assert kapi.error("POST", "/files/create", json={
        "fileName": "known.txt", "fileType": "0", "parentFolder": ["root"], "sha256": sha(data), "length": len(data),
        "autoRename": 3, "containerId": kapi.container}) == 13000405
    renamed = kapi.create("known.txt", data, autoRename=2)
    assert renamed["fileName"].startswith("known_") and renamed["fileName"].endswith(".txt")
    switches(kapi.server, rapid_upload=False)
    assert kapi.create("no-rapid.txt", data)["rapidUpload"] is False


def test_empty_file(kapi):
    switches(kapi.server, rapid_upload=False)
    fid = kapi.upload("empty.txt", b"")
    assert kapi.detail(fid)["size"] == 0 and kapi.download(fid) == b""


def test_quota_at_create(kd_fresh):
    with KooApi(kd_fresh) as api:
        assert api.error("POST", "/files/create", json={
            "fileName": "huge.bin", "fileType": "0", "parentFolder": ["root"], "sha256": "3" * 64, "length": 65 * MIB,
            "containerId": api.container}) == 13000311


# --- downloads --------------------------------------------------------------------------------
DATA = bytes(range(256)) * 40


@pytest.fixture(scope="module")
def file_id(kd_server):
    with KooApi(kd_server) as api:
        return api.upload("dl.bin", DATA)


def test_download_answer_shape(kapi, file_id):
    folder = kapi.mkdir("not-a-file")["id"]
    body = kapi.ok("POST", "/files/download", json={"containerId": kapi.container,
                                                    "fileIds": [file_id, folder, "nope"]})
    assert body["batchCode"] == 0
    ok, is_folder, missing = body["downloads"]
    assert ok["code"] == 0 and ok["fileName"] == "dl.bin" and "X-Amz-Signature=" in ok["url"]
    assert "response-content-disposition=attachment" in ok["url"] and "X-Amz-SignedHeaders=host" in ok["url"]
    assert is_folder["code"] == 13000406 and missing["code"] == 13000309 and missing["url"] == ""
    assert kapi.ok("POST", "/files/download", json={"containerId": kapi.container,
                                                    "fileIds": ["nope"]})["batchCode"] == 2
    assert kapi.error("POST", "/files/download", json={"containerId": kapi.container,
                                                       "fileIds": ["x"] * 101}) == 13000102


def test_partial_batch_switch(kapi, file_id):
    switches(kapi.server, download_partial=True)
    body = kapi.ok("POST", "/files/download", json={"containerId": kapi.container, "fileIds": [file_id, file_id]})
    assert body["batchCode"] == 0 and body["downloads"][1]["code"] == 13000407


@pytest.mark.parametrize("rng,start,end", [("bytes=0-99", 0, 99), ("bytes=100-", 100, 10239),
                                           ("bytes=-100", 10140, 10239), ("bytes=10000-99999", 10000, 10239)])
def test_range(kapi, file_id, rng, start, end):
    resp = httpx.get(kapi.url(file_id), headers={"Range": rng})
    assert resp.status_code == 206 and resp.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.content == DATA[start:end + 1] and resp.headers["accept-ranges"] == "bytes"


def test_range_edge_cases(kapi, file_id):
    url = kapi.url(file_id)
    assert httpx.get(url, headers={"Range": "bytes=20000-"}).status_code == 416
    whole = httpx.get(url, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole object, as S3
    assert whole.status_code == 200 and whole.content == DATA
    switches(kapi.server, range=False)
    off = httpx.get(kapi.url(file_id), headers={"Range": "bytes=0-99"})
    assert off.status_code == 200 and off.content == DATA and "accept-ranges" not in off.headers


def test_expired_and_forged_urls(kapi, file_id):
    url = kapi.url(file_id)
    assert httpx.get(url).status_code == 200
    kapi.server.faults.state()
    httpx.post(kapi.server.url + "/_cloudfs/koodrive/expire-urls").raise_for_status()
    resp = httpx.get(url)
    assert resp.status_code == 403 and b"Request has expired" in resp.content
    assert httpx.get(kapi.url(file_id)).status_code == 200  # a new URL works
    switches(kapi.server, url_ttl=1)
    short = kapi.url(file_id)
    time.sleep(2.1)
    assert httpx.get(short).status_code == 403
    forged = kapi.url(file_id).replace("dl.bin", "other.bin")
    assert httpx.get(forged).status_code == 403


def test_url_serves_the_object_signed(kapi):
    fid = kapi.upload("versioned.txt", b"version one")
    url = kapi.url(fid)
    kapi.run_job(2, 202, [fid])
    # the file is gone and its only object with it
    resp = httpx.get(url)
    assert resp.status_code == 404 and b"NoSuchKey" in resp.content


def test_pending_upload_is_invisible_and_dies_with_its_folder(kapi):
    folder = kapi.mkdir("pending-home")["id"]
    data = b"pending content"
    created = kapi.create("pending.bin", data, folder)
    assert kapi.names(folder) == []
    assert kapi.error("POST", f"/files/{created['fileId']}/detail", json={"containerId": kapi.container}) == 13000309
    kapi.put_parts(created, data)
    kapi.run_job(2, 202, [folder])
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000401


def test_an_unfinished_upload_holds_no_name(kapi):
    """No cancel call: an abandoned task must not block its name (switch
    ``pending_holds_name``); the name is checked again at complete."""
    folder = kapi.mkdir("abandoned-home")["id"]
    first, second = b"abandoned", b"the one that lands"
    abandoned = kapi.create("same.bin", first, folder)
    kapi.put_parts(abandoned, first)
    landed = kapi.create("same.bin", second, folder)  # the name is still free
    kapi.put_parts(landed, second)
    kapi.ok("POST", "/files/complete", json={"fileId": landed["fileId"]})
    assert kapi.names(folder) == ["same.bin"] and kapi.download(landed["fileId"]) == second
    # completing the abandoned task now finds its name taken
    assert kapi.error("POST", "/files/complete", json={"fileId": abandoned["fileId"]}) == 13000405
    assert kapi.names(folder) == ["same.bin"] and kapi.download(landed["fileId"]) == second


def test_pending_holds_name_switch(kapi):
    switches(kapi.server, pending_holds_name=True)
    try:
        folder = kapi.mkdir("held-home")["id"]
        kapi.create("held.bin", b"x", folder)
        assert kapi.names(folder) == []
        assert kapi.error("POST", "/files/create", json={
            "fileName": "held.bin", "fileType": "0", "parentFolder": [folder], "length": 1, "autoRename": 3,
            "containerId": kapi.container}) == 13000405
    finally:
        httpx.delete(kapi.server.url + "/_cloudfs/koodrive/switches").raise_for_status()


def test_upload_tasks_survive_a_restart(kd_fresh):
    data = os.urandom(1000)
    with KooApi(kd_fresh) as api:
        created = api.create("restart.bin", data)
        kd_fresh.restart()
        api.http.close()
        api.http = httpx.Client(base_url=kd_fresh.url, timeout=30)
        api.put_parts(created, data)
        api.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
        assert api.download(created["fileId"]) == data


def test_a_dropped_part_upload_is_not_counted(kapi):
    data = os.urandom(200_000)
    created = kapi.create("dropped.bin", data)
    url = created["multiParts"][0]["uploadUrl"]
    kapi.server.faults.set(drop_rate=1.0, drop_after_bytes=50_000, drop_target="request",
                           path_regex="^/obs/upload/", count=1)
    with pytest.raises(httpx.HTTPError):
        kapi.http.put(url, content=data).raise_for_status()
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000409
    kapi.http.put(url, content=data).raise_for_status()  # the same URL again
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
    assert kapi.download(created["fileId"]) == data


def _contexts(tmp_path, data: bytes, offsets: list[int]) -> dict[int, str]:
    from cloudfs.server.koodrive import sha256ctx

    path = tmp_path / "ctx.bin"
    path.write_bytes(data)
    return sha256ctx.digest_with_states(str(path), offsets)[1]


def test_parallel_upload_hash_ctx_checked_at_complete(kapi, tmp_path):
    from cloudfs.server.koodrive import sha256ctx

    if not sha256ctx.AVAILABLE:
        pytest.skip("libcrypto not found: the emulator cannot read SHA-256 states")
    data = os.urandom(10 * MIB + 100)
    states = _contexts(tmp_path, data, [5 * MIB, 10 * MIB])
    plan = [{"partNumber": 1, "partSize": 5 * MIB},
            {"partNumber": 2, "partSize": 5 * MIB, "hashCtx": states[5 * MIB]},
            {"partNumber": 3, "partSize": 100, "hashCtx": states[10 * MIB]}]
    created = kapi.create("parallel-ok.bin", data, multiParts=plan)
    kapi.put_parts(created, data)
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
    assert kapi.download(created["fileId"]) == data
    # a wrong state: the content hashes right, the parallel bookkeeping does not
    plan[2]["hashCtx"] = states[5 * MIB]
    created = kapi.create("parallel-bad.bin", data, multiParts=plan, sha256=None)
    kapi.put_parts(created, data)
    assert kapi.error("POST", "/files/complete", json={"fileId": created["fileId"]}) == 13000402
    switches(kapi.server, verify_hash_ctx=False)
    created = kapi.create("parallel-unchecked.bin", data, multiParts=plan, sha256=None)
    kapi.put_parts(created, data)
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})


def test_expired_part_url_then_a_fresh_one(kapi):
    switches(kapi.server, upload_url_ttl=1)
    data = b"late parts"
    created = kapi.create("late.bin", data)
    time.sleep(2.1)
    resp = kapi.http.put(created["multiParts"][0]["uploadUrl"], content=data)
    assert resp.status_code == 403 and b"Request has expired" in resp.content
    switches(kapi.server, upload_url_ttl=3600)
    fresh = kapi.ok("POST", "/files/multipart/uploadUrl",
                    json={"fileId": created["fileId"], "multiParts": [{"partNumber": 1, "partSize": len(data)}]})
    kapi.http.put(fresh["multiParts"][0]["uploadUrl"], content=data).raise_for_status()
    kapi.ok("POST", "/files/complete", json={"fileId": created["fileId"]})
