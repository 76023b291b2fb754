"""Delete (soft and hard), the trash file system, restore and quota."""

from __future__ import annotations

from .helpers import Api, uri


def _trash(api):
    return api.ls("/", fs="trash")["files"]


def test_soft_delete_to_trash_and_restore(fresh_api):
    api = fresh_api
    api.mkdir("/docs/sub")
    api.put("/docs/sub/a.txt", b"hello")
    used = api.ok("GET", "/user/capacity")["used"]
    assert api.delete("/docs") == {"code": 0, "msg": ""}
    assert api.names("/") == []
    items = _trash(api)
    assert len(items) == 1
    item = items[0]
    assert item["name"] == "docs" and item["path"].startswith("cloudreve://trash/")
    assert item["metadata"]["sys:restore_uri"] == "cloudreve://my/docs"
    assert int(item["metadata"]["sys:expected_collect_time"]) > 0
    assert item["capability"] == "AMIK"
    # trash still counts toward used
    assert api.ok("GET", "/user/capacity")["used"] == used
    listing = api.ls("/", fs="trash")
    assert listing["parent"]["id"] == "" and listing["props"]["capability"] == "AMIK"
    assert "storage_policy" not in listing
    # items of the trash can be stat-ed, and the trash is flat
    info = api.get("/file/info", {"uri": item["path"]})["data"]
    assert info["name"] == "docs" and "capability" not in info
    assert api.get("/file", {"uri": item["path"] + "/sub"})["code"] == 40016
    assert api.get("/file", {"uri": item["path"]})["code"] == 40016
    # trash refuses actions it has no capability for
    assert api.post("/file/rename", {"uri": item["path"], "new_name": "x"})["code"] == 403
    body = api.call("DELETE", "/file", json={"uris": [item["path"]]})
    assert body["code"] == 40081 and body["aggregated_error"][item["path"]]["code"] == 403
    # restore puts it back under its old name
    assert api.post("/file/restore", {"uris": [item["path"]]}) == {"code": 0, "msg": ""}
    assert api.names("/") == ["docs"]
    assert api.download("/docs/sub/a.txt") == b"hello"
    assert _trash(api) == []
    assert "sys:restore_uri" not in api.info("/docs")["data"]["metadata"]


def test_restore_clash_and_missing_parent(fresh_api):
    api = fresh_api
    api.put("/same.txt", b"1")
    api.delete("/same.txt")
    api.put("/same.txt", b"2")
    path = _trash(api)[0]["path"]
    body = api.post("/file/restore", {"uris": [path]})
    assert body["code"] == 40081 and body["aggregated_error"][path]["code"] == 40004
    api.mkdir("/gone/x")
    api.put("/gone/x/f.txt", b"1")
    api.delete("/gone/x/f.txt")
    api.delete("/gone", hard=True)
    lost = next(i for i in _trash(api) if i["name"] == "f.txt")["path"]
    body = api.post("/file/restore", {"uris": [lost]})
    assert body["code"] == 40081 and body["aggregated_error"][lost]["code"] == 40016
    # restoring a "my" URI is not supported there
    body = api.post("/file/restore", {"uris": [uri("/same.txt")]})
    assert body["aggregated_error"][uri("/same.txt")]["code"] == 403


def test_hard_delete_and_purge(fresh_api):
    api = fresh_api
    api.put("/a.bin", b"a" * 100)
    api.put("/b.bin", b"b" * 200)
    assert api.ok("GET", "/user/capacity")["used"] == 300
    api.delete("/a.bin", hard=True)
    assert api.ok("GET", "/user/capacity")["used"] == 200
    assert _trash(api) == []
    api.delete("/b.bin")
    path = _trash(api)[0]["path"]
    assert api.call("DELETE", "/file", json={"uris": [path], "skip_soft_delete": True})["code"] == 0
    assert _trash(api) == [] and api.ok("GET", "/user/capacity")["used"] == 0
    api.put("/c.bin", b"c")
    api.delete("/c.bin")
    assert api.ok("DELETE", "/file/trash") is None
    assert _trash(api) == [] and api.ok("GET", "/user/capacity")["used"] == 0


def test_delete_errors(api):
    api.mkdir("/del-errors")
    api.put("/del-errors/keep.txt", b"k")
    body = api.delete("/del-errors/missing", "/del-errors/keep.txt")
    assert body["code"] == 40081
    assert list(body["aggregated_error"]) == [uri("/del-errors/missing")]
    inner = body["aggregated_error"][uri("/del-errors/missing")]
    assert inner["code"] == 40016 and inner["msg"] == "Path not exist"
    assert body["msg"] == 'failed to get target file: failed to walk into "missing": Path not exist: ent: file not found'
    assert "keep.txt" not in api.names("/del-errors")
    root = api.call("DELETE", "/file", json={"uris": ["cloudreve://my/"]})
    assert root["code"] == 40081 and root["aggregated_error"]["cloudreve://my"]["code"] == 403
    assert api.call("DELETE", "/file", json={"uris": []}) == {"code": 40001, "msg": "Uris too short"}
    assert api.call("DELETE", "/file", json={"uris": "x"}) == {"code": 40001, "msg": "JSON marshall error"}
    many = api.call("DELETE", "/file", json={"uris": [uri(f"/x{i}") for i in range(3001)]})
    assert many["code"] == 40074 and many["msg"] == "Maximum allowed batch size: 3000"
    assert api.call("DELETE", "/file", json={"uris": ["bad uri"]})["code"] == 40001
    unlink = api.call("DELETE", "/file", json={"uris": [uri("/del-errors")], "unlink": True})
    assert unlink["code"] == 403


def test_delete_folder_and_child_in_one_batch_conflicts(api):
    # Cloudreve locks every target; a folder and its own child collide (40073)
    api.mkdir("/pair/child")
    body = api.delete("/pair", "/pair/child")
    assert body["code"] == 40073
    assert body["data"][0]["owner"]["application"]["type"] == "softDelete"
    assert "pair" in api.names("/")


def test_trash_retention_collector(fresh_server):
    # the collector runs every 10 minutes; call it directly with a clock 8 days ahead
    import time

    from cloudfs.server.common.state import ServerConfig
    from cloudfs.server.v4.fileops import collect_trash
    from cloudfs.server.v4.state import V4State

    with Api(fresh_server) as api:
        api.put("/old.txt", b"x" * 10)
        api.delete("/old.txt")
    fresh_server.stop()
    state = V4State(ServerConfig(data_dir=fresh_server.data_dir))
    try:
        assert collect_trash(state, time.time()) == 0
        assert collect_trash(state, time.time() + 8 * 86400) == 1
        assert state.db.storage_used(1) == 0
    finally:
        state.close()
    fresh_server.restart()
    with Api(fresh_server) as api:
        assert _trash(api) == []


def test_deleting_a_placeholder_ends_its_session(fresh_api):
    sess = fresh_api.session("/pending.bin", 10)
    token = fresh_api.post("/file/rename", {"uri": uri("/pending.bin"), "new_name": "x"})["data"][0]["token"]
    fresh_api.call("DELETE", "/file/lock", json={"tokens": [token]})
    assert fresh_api.delete("/pending.bin", hard=True)["code"] == 0
    assert fresh_api.chunk(sess["session_id"], 0, b"x" * 10)["code"] == 40011


def test_ids_of_deleted_objects_are_never_reused(fresh_api):
    # Cloudreve's database never hands out an id again; clients (the mount's
    # inode table) rely on an id naming one object for good
    api = fresh_api
    api.put("/first.bin", b"1")
    first = api.info("/first.bin")["data"]["id"]
    api.delete("/first.bin", hard=True)
    api.mkdir("/second")
    api.put("/third.bin", b"3")
    assert first not in (api.info("/second")["data"]["id"], api.info("/third.bin")["data"]["id"])
