"""KooDrive emulator: GetSpace and the seeds' usage reports (units), and the
shared fault injector (latency, 5xx, dropped connections, capacity)."""

from __future__ import annotations

import time

import httpx
import pytest

from .koohelpers import MIB, KooApi, switches


@pytest.fixture
def fresh(kd_fresh):
    with KooApi(kd_fresh) as api:
        api.upload("a.bin", b"a" * 3000)
        yield api


def test_get_space(fresh):
    data = fresh.space()
    assert data["type"] == 1 and data["ownerId"] == fresh.user_id and len(data["containerId"]) <= 64
    assert data["capacity"] == str(64 * MIB) and data["spaceUsed"] == "3000"  # Strings, bytes
    assert data["bizRootFileId"] and isinstance(data["capacity"], str)
    root = fresh.page(data["bizRootFileId"])["files"]
    assert [f["fileName"] for f in root] == ["a.bin"]
    switches(fresh.server, space_unit="KB")
    assert fresh.space()["capacity"] == str(64 * 1024) and fresh.space()["spaceUsed"] == "2"


def test_get_space_errors(fresh):
    assert fresh.error("GET", f"/space/{fresh.user_id}") == 13000102  # type is required
    assert fresh.error("GET", f"/space/{fresh.user_id}", params={"type": 2}) == 13000102
    assert fresh.error("GET", "/space/1008600000000000001", params={"type": 1}) == 13000410
    assert fresh.error("GET", f"/space/{fresh.user_id}", params={"type": 1, "containerId": "x"}) == 13000302


def test_usage_by_user_seed_004(fresh):
    body = fresh.ok("POST", "/space/usage/user", json={"userIds": [fresh.user_id, "232323"], "limit": 10, "offset": 0})
    assert body["code"] == 0 and body["msg"] == "success" and body["total"] == 1
    row = body["data"][0]
    assert row["userId"] == fresh.user_id
    assert row["quota"] == str(64 * 1024) and isinstance(row["quota"], str)  # KB, String
    assert isinstance(row["used"], float) and row["used"] == pytest.approx(3000 / 1024, abs=1e-3)  # KB, Double
    for key in ("createTime", "effectiveTime", "expirationTime"):
        assert row[key].endswith("Z")
    assert fresh.error("POST", "/space/usage/user", json={"userIds": [str(i) for i in range(51)]}) == 13000102
    assert fresh.error("POST", "/space/usage/user", json={"userIds": []}) == 13000102
    switches(fresh.server, usage_unit="B")
    row = fresh.ok("POST", "/space/usage/user", json={"userIds": [fresh.user_id]})["data"][0]
    assert row["quota"] == str(64 * MIB) and row["used"] == 3000.0


def test_usage_by_quota_seed_002(fresh):
    body = fresh.ok("GET", "/space/usage/quota", params={"limit": 10, "offset": 0})
    assert body["code"] == 0 and body["total"] == 1
    tier = body["data"][0]
    assert tier == {"quota": str(64 * 1024), "totalAllocation": 64 * 1024, "totalCapacity": 64 * 1024,
                    "totalUsed": 2}
    assert fresh.ok("GET", "/space/usage/quota", params={"offset": 1})["data"] == []
    assert fresh.error("GET", "/space/usage/quota", params={"limit": "x"}) == 13000102


def test_usage_overview(fresh):
    data = fresh.ok("GET", "/space/usage/overview")["data"]
    assert data == {"totalAllocation": 64 * 1024, "totalCapacity": 64 * 1024, "totalUsed": 2}


def test_capacity_fault_and_recycle_switch(fresh):
    fresh.server.faults.set_capacity(10 * MIB)
    assert fresh.space()["capacity"] == str(10 * MIB)
    fid = fresh.ls()[0]["id"]
    fresh.run_job(2, 201, [fid])
    assert fresh.space()["spaceUsed"] == "3000"  # the recycle bin counts
    switches(fresh.server, recycle_counts=False)
    assert fresh.space()["spaceUsed"] == "0"


def test_faults_latency_errors_drops(fresh):
    server = fresh.server
    server.faults.set(error_rate=1.0, error_status=503, path_regex="/space/", count=1)
    assert fresh.request("GET", f"/space/{fresh.user_id}", params={"type": 1}).status_code == 503
    fresh.space()
    server.faults.set(latency_s=0.5, path_regex="/files/0", count=1)
    started = time.monotonic()
    fresh.page()
    assert time.monotonic() - started >= 0.5
    url = fresh.url(fresh.ls()[0]["id"])
    server.faults.set(drop_rate=1.0, drop_after_bytes=100, path_regex="^/obs/", count=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url).raise_for_status()
    assert httpx.get(url).content == b"a" * 3000
    stats = server.faults.stats()
    assert stats["error"] == 1 and stats["latency"] == 1 and stats["drop_response"] == 1


def test_switch_control_rejects_unknown_names(kd_fresh):
    resp = httpx.post(kd_fresh.url + "/_cloudfs/koodrive/switches", json={"no_such_switch": 1})
    assert resp.status_code == 400
    resp = httpx.post(kd_fresh.url + "/_cloudfs/koodrive/switches", json={"space_unit": "MB"})
    assert resp.status_code == 400
    assert httpx.delete(kd_fresh.url + "/_cloudfs/koodrive/switches").json()["range"] is True


def test_rate_limit_switch(fresh):
    switches(fresh.server, rate_limit=3)
    answers = [fresh.request("GET", "/space/usage/overview") for _ in range(6)]
    refused = [r for r in answers if r.status_code == 429]
    assert answers[0].status_code == 200 and len(refused) >= 2
    assert {r.json()["code"] for r in refused} == {"APIGW.0308"}
    time.sleep(1.1)
    assert fresh.request("GET", "/space/usage/overview").status_code == 200
