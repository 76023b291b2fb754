"""Listing, stat, create, rename, move/copy, metadata, URIs and names."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

import pytest
from hashids import Hashids

from .helpers import enc, uri


@pytest.fixture
def base(api) -> str:
    """A fresh folder per test inside the shared server."""
    path = f"/t-{uuid.uuid4().hex[:8]}"
    api.mkdir(path)
    return path


# --- listing -----------------------------------------------------------------------
def test_list_root_shape(api):
    data = api.ok("GET", "/file", params={"uri": "cloudreve://my/", "page_size": 10})
    assert set(data) >= {"files", "parent", "pagination", "props", "context_hint", "mixed_type",
                         "storage_policy", "view"}
    assert data["parent"]["type"] == 1 and data["parent"]["name"] == ""
    assert data["parent"]["path"] == "cloudreve://my/" and data["parent"]["metadata"] is None
    assert data["props"] == {"capability": "w8edAQ==", "max_page_size": 2000,
                             "order_by_options": ["name", "size", "updated_at", "created_at"],
                             "order_direction_options": ["asc", "desc"]}
    assert data["pagination"]["is_cursor"] is True and data["pagination"]["page"] == 0
    assert data["storage_policy"]["type"] == "local" and data["storage_policy"]["chunk_concurrency"] >= 1
    assert data["mixed_type"] is False
    uuid.UUID(data["context_hint"])
    # both spellings of the root
    assert api.ok("GET", "/file", params={"uri": "cloudreve://my"})["parent"]["id"] == data["parent"]["id"]


def test_list_folders_first_and_ordering(api, base):
    for name in ("b.txt", "a.txt", "C.txt"):
        api.put(f"{base}/{name}", b"x" * (ord(name[0]) % 7))
    for name in ("zdir", "adir"):
        api.mkdir(f"{base}/{name}")
    assert api.names(base) == ["zdir", "adir", "b.txt", "a.txt", "C.txt"]  # creation (id) order
    by_name = api.ls(base, order_by="name", order_direction="asc")["files"]
    assert [f["name"] for f in by_name] == ["adir", "zdir", "C.txt", "a.txt", "b.txt"]  # bytewise
    desc = api.ls(base, order_by="name", order_direction="desc")["files"]
    assert [f["name"] for f in desc] == ["zdir", "adir", "b.txt", "a.txt", "C.txt"]
    sizes = api.ls(base, order_by="size")["files"]
    assert [f["size"] for f in sizes if f["type"] == 0] == sorted(f["size"] for f in sizes if f["type"] == 0)
    item = by_name[2]
    assert item["path"] == f"cloudreve://my{base}/C.txt" and item["metadata"] == {}
    assert item["capability"] == "w8edAQ==" and item["owned"] is True and item["primary_entity"]


def test_pagination_cursor(api, base):
    for i in range(7):
        api.mkdir(f"{base}/d{i}")
    for i in range(8):
        api.touch(f"{base}/f{i}")
    for order in ("", "name", "size", "updated_at", "created_at"):
        for direction in ("asc", "desc"):
            seen, token, pages = [], None, 0
            while True:
                params = {"uri": uri(base), "page_size": 4, "order_by": order, "order_direction": direction}
                if token:
                    params["next_page_token"] = token
                data = api.ok("GET", "/file", params=params)
                pages += 1
                seen += [f["name"] for f in data["files"]]
                token = data["pagination"].get("next_token")
                assert data["pagination"]["page_size"] == 4
                if not token:
                    break
            assert sorted(seen) == sorted([f"d{i}" for i in range(7)] + [f"f{i}" for i in range(8)]), (order, seen)
            assert len(seen) == 15 and pages == 4
            assert all(n.startswith("d") for n in seen[:7])


def test_page_size_default_and_cap(api):
    data = api.ok("GET", "/file", params={"uri": "cloudreve://my/"})
    assert data["pagination"]["page_size"] == 100
    data = api.ok("GET", "/file", params={"uri": "cloudreve://my/", "page_size": 99999})
    assert data["pagination"]["page_size"] == 2000


def test_list_errors(api, base):
    api.touch(f"{base}/file.txt")
    assert api.get("/file", {"uri": uri(f"{base}/missing")})["code"] == 40016
    assert api.get("/file", {"uri": uri(f"{base}/file.txt")})["code"] == 40016
    assert api.get("/file", {}) == {"code": 40001, "msg": "Uri cannot be empty"}
    assert api.get("/file", {"uri": "cloudreve://my/", "page": -1}) == {"code": 40001, "msg": "Page too short"}
    assert api.get("/file", {"uri": "cloudreve://my/", "page_size": "x"}) == {"code": 40001,
                                                                            "msg": "Parameter error"}
    assert api.get("/file", {"uri": "http://my/"})["code"] == 40001
    body = api.get("/file", {"uri": "cloudreve://my/", "next_page_token": "!!notatoken"})
    assert body["code"] == -1 and body["msg"] == ""
    assert api.get("/file", {"uri": "cloudreve://nosuchfs/"})["code"] == -1


# --- stat ----------------------------------------------------------------------------
def test_info(api, base):
    created = api.put(f"{base}/hello.txt", b"hello")
    data = api.ok("GET", "/file/info", params={"uri": uri(f"{base}/hello.txt")})
    assert data["id"] == created["id"] and data["size"] == 5 and data["metadata"] == {}
    assert data["primary_entity"] == created["primary_entity"]
    by_id = api.ok("GET", "/file/info", params={"id": created["id"]})
    assert by_id["path"] == data["path"]
    ext = api.ok("GET", "/file/info", params={"uri": uri(f"{base}/hello.txt"), "extended": "true"})
    assert ext["extended_info"]["storage_used"] == 5
    assert ext["extended_info"]["entities"][0]["id"] == created["primary_entity"]
    summary = api.ok("GET", "/file/info", params={"uri": uri(base), "folder_summary": "true"})["folder_summary"]
    assert summary["files"] == 1 and summary["size"] == 5 and summary["completed"] is True
    root = api.get("/file/info", {"uri": "cloudreve://my"})
    assert root["code"] == 403 and root["msg"] == "Not supported action"
    assert api.get("/file/info", {"uri": uri(f"{base}/nope")})["code"] == 40016
    assert api.get("/file/info", {})["code"] == 40001
    assert api.get("/file/info", {"id": "%%%"})["code"] == 40001


# --- create ----------------------------------------------------------------------------
def test_create_mkdir_p_and_idempotence(api, base):
    deep = api.mkdir(f"{base}/a/b/c")
    assert deep["type"] == 1 and deep["name"] == "c" and deep["path"] == f"cloudreve://my{base}/a/b/c"
    assert deep["metadata"] is None
    again = api.mkdir(f"{base}/a/b/c")
    assert again["id"] == deep["id"]
    conflict = api.post("/file/create", {"uri": uri(f"{base}/a/b/c"), "type": "folder", "err_on_conflict": True})
    assert conflict["code"] == 40004
    other = api.post("/file/create", {"uri": uri(f"{base}/a/b/c"), "type": "file"})
    assert other["code"] == 40004
    empty = api.touch(f"{base}/a/empty.txt")
    assert empty["type"] == 0 and empty["size"] == 0
    assert api.touch(f"{base}/a/empty.txt")["id"] == empty["id"]
    with_meta = api.ok("POST", "/file/create", json={"uri": uri(f"{base}/m"), "type": "folder",
                                                      "metadata": {"dav:owner": "me"}})
    assert with_meta["metadata"] is None
    assert api.info(f"{base}/m")["data"]["metadata"] == {"dav:owner": "me"}
    bad_meta = api.post("/file/create", {"uri": uri(f"{base}/m2"), "type": "folder", "metadata": {"nope": "x"}})
    assert bad_meta["code"] == 40001


def test_create_errors(api, base):
    api.touch(f"{base}/file")
    assert api.post("/file/create", {"uri": uri(f"{base}/file/sub"), "type": "folder"})["code"] == 403
    assert api.post("/file/create", {"uri": uri(base), "type": "dir"}) == {"code": 40001,
                                                                          "msg": "Invalid parameters."}
    assert api.post("/file/create", {"type": "file"}) == {"code": 40001, "msg": "Uri cannot be empty"}
    assert api.post("/file/create", {"uri": "cloudreve://trash/x", "type": "file"})["code"] == 403
    assert api.post("/file/create", {"uri": "nope://my/x", "type": "file"})["code"] == 40001


@pytest.mark.parametrize("name", ["a:b", "a*b", "q?", 'quote"', "<x>", "pipe|", "back\\slash",
                                  "x" * 256, "é" * 128])
def test_illegal_names(api, base, name):
    body = api.post("/file/create", {"uri": f"cloudreve://my{base}/{enc(name)}", "type": "file"})
    assert body["code"] == 40052, (name, body)
    assert body["msg"] == "Invalid object name"
    assert name not in api.names(base)


def test_legal_odd_names(api, base):
    names = ["x" * 255, "é" * 127, " lead", "trail. ", "...", "+plus", "%percent", "#hash", "a?b".replace("?", ""),
             "日本語", "emoji 🎉", "semi;colon", "a&b=c", "(x)[y]{z}", "~tilde"]
    for name in names:
        data = api.ok("POST", "/file/create", json={"uri": f"cloudreve://my{base}/{enc(name)}", "type": "file"})
        assert data["name"] == name
    assert sorted(api.names(base)) == sorted(names)


def test_case_sensitive_names(api, base):
    api.put(f"{base}/Readme", b"upper")
    api.put(f"{base}/readme", b"lower")
    assert sorted(api.names(base)) == ["Readme", "readme"]


# --- URIs ------------------------------------------------------------------------------
def test_uri_traversal_is_resolved_inside_root(api, base):
    api.put(f"{base}/inner.txt", b"1")
    name = base.strip("/")
    for raw in (f"cloudreve://my/{name}/../{name}/inner.txt", f"cloudreve://my//{name}//./inner.txt",
                f"cloudreve://my/../../../{name}/inner.txt", f"cloudreve://my/{name}/x/../inner.txt",
                f"cloudreve://MY/{name}/inner.txt", f"CLOUDREVE://my/{name}/inner.txt/"):
        data = api.get("/file/info", {"uri": raw})
        assert data["code"] == 0, raw
        assert data["data"]["name"] == "inner.txt"
    # creating through ".." lands inside the root too
    made = api.ok("POST", "/file/create", json={"uri": "cloudreve://my/../../escape-attempt", "type": "folder"})
    assert made["path"] == "cloudreve://my/escape-attempt"
    assert api.get("/file/info", {"uri": "cloudreve://my/%zz"})["code"] == 40001
    assert api.get("/file/info", {"uri": "cloudreve://my/a\x01b"})["code"] == 40001


def test_uri_user_part(server, api, base):
    me = api.ok("GET", "/user/me")["id"]
    assert api.get("/file/info", {"uri": f"cloudreve://{me}@my{base}"})["code"] == 0
    assert api.get("/file/info", {"uri": f"cloudreve://notanid@my{base}"})["code"] == 40016
    other = api.get("/file/info", {"uri": f"cloudreve://{_user_hashid(server, 99)}@my{base}"})
    assert other["code"] == 403 and other["msg"] == "Permission denied"


def _user_hashid(server, uid: int) -> str:
    # ids are opaque to clients; the test reads the data dir's salt to forge another user's id
    with closing(sqlite3.connect(server.data_dir / "cloudfs-server.db")) as db:
        salt = db.execute("SELECT value FROM meta WHERE key='hashid_salt'").fetchone()[0]
    return Hashids(salt=salt).encode(uid, 1)


def test_percent_encoding_roundtrip(api, base):
    name = "a b%c#d+e&f=.txt"
    api.put(f"{base}/{name}", b"data")
    item = next(f for f in api.ls(base)["files"] if f["name"] == name)
    assert item["path"] == f"cloudreve://my{base}/{enc(name)}"
    assert api.get("/file/info", {"uri": item["path"]})["data"]["name"] == name


# --- rename -----------------------------------------------------------------------------
def test_rename(api, base):
    made = api.put(f"{base}/old.txt", b"1")
    api.put(f"{base}/taken.txt", b"2")
    renamed = api.ok("POST", "/file/rename", json={"uri": uri(f"{base}/old.txt"), "new_name": "new.txt"})
    assert renamed["id"] == made["id"] and renamed["name"] == "new.txt" and renamed["metadata"] is None
    assert renamed["path"] == f"cloudreve://my{base}/new.txt"
    assert api.post("/file/rename", {"uri": uri(f"{base}/new.txt"), "new_name": "taken.txt"})["code"] == 40004
    assert api.post("/file/rename", {"uri": uri(f"{base}/new.txt"), "new_name": "a/b"})["code"] == 40052
    assert api.post("/file/rename", {"uri": uri(f"{base}/new.txt"), "new_name": ".."})["code"] == 40052
    assert api.post("/file/rename", {"uri": uri(f"{base}/new.txt"), "new_name": "x" * 256}) == {
        "code": 40001, "msg": "NewName too long"}
    assert api.post("/file/rename", {"uri": uri(f"{base}/new.txt"), "new_name": "é" * 200})["code"] == 40052
    assert api.post("/file/rename", {"uri": uri(f"{base}/nope"), "new_name": "x"})["code"] == 40016
    assert api.post("/file/rename", {"uri": "cloudreve://my/", "new_name": "x"})["code"] == 403
    assert sorted(api.names(base)) == ["new.txt", "taken.txt"]


# --- move / copy ----------------------------------------------------------------------------
def test_move(api, base):
    api.mkdir(f"{base}/src/inner")
    api.put(f"{base}/src/inner/f.txt", b"abc")
    api.mkdir(f"{base}/dst")
    assert api.ok("POST", "/file/move", json={"uris": [uri(f"{base}/src/inner")], "dst": uri(f"{base}/dst")}) is None
    assert api.names(f"{base}/dst/inner") == ["f.txt"]
    assert api.names(f"{base}/src") == []
    # into its own descendant: per-item 403 inside 40081
    body = api.post("/file/move", {"uris": [uri(f"{base}/dst")], "dst": uri(f"{base}/dst/inner")})
    assert body["code"] == 40081
    assert body["aggregated_error"][uri(f"{base}/dst")]["code"] == 403
    # partial failure: the valid item still moves
    api.put(f"{base}/loose.txt", b"1")
    body = api.post("/file/move", {"uris": [uri(f"{base}/loose.txt"), uri(f"{base}/missing")],
                                   "dst": uri(f"{base}/src")})
    assert body["code"] == 40081 and list(body["aggregated_error"]) == [uri(f"{base}/missing")]
    assert body["aggregated_error"][uri(f"{base}/missing")]["code"] == 40016
    assert body["aggregated_error"][uri(f"{base}/missing")]["correlation_id"] == body["correlation_id"]
    assert "Path not exist" in body["msg"]
    assert api.names(f"{base}/src") == ["loose.txt"]
    # a clash fails the whole batch
    api.put(f"{base}/loose.txt", b"2")
    api.put(f"{base}/other.txt", b"3")
    body = api.post("/file/move", {"uris": [uri(f"{base}/other.txt"), uri(f"{base}/loose.txt")],
                                   "dst": uri(f"{base}/src")})
    assert body["code"] == 40004
    assert sorted(api.names(base)) == ["dst", "loose.txt", "other.txt", "src"]
    assert api.post("/file/move", {"uris": [uri(f"{base}/other.txt")], "dst": uri(f"{base}/nope")})["code"] == 40016
    assert api.post("/file/move", {"uris": [uri(f"{base}/other.txt")], "dst": uri(f"{base}/loose.txt")})["code"] == 403
    assert api.post("/file/move", {"uris": [], "dst": uri(base)}) == {"code": 40001, "msg": "Uris too short"}
    assert api.post("/file/move", {"uris": [uri(base)] * 3001, "dst": uri(base)})["code"] == 40074


def test_copy_shares_content_and_charges_quota(fresh_api):
    api = fresh_api
    api.mkdir("/src/sub")
    api.put("/src/a.bin", b"a" * 1000)
    api.put("/src/sub/b.bin", b"b" * 500)
    api.mkdir("/dst")
    used = api.ok("GET", "/user/capacity")["used"]
    api.ok("POST", "/file/move", json={"uris": [uri("/src")], "dst": uri("/dst"), "copy": True})
    assert api.ok("GET", "/user/capacity")["used"] == used + 1500
    copied = api.info("/dst/src/a.bin")["data"]
    original = api.info("/src/a.bin")["data"]
    assert copied["id"] != original["id"] and copied["primary_entity"] == original["primary_entity"]
    assert api.download("/dst/src/sub/b.bin") == b"b" * 500
    # deleting the original keeps the copy's content (shared blob, reference counted)
    api.delete("/src", hard=True)
    assert api.download("/dst/src/a.bin") == b"a" * 1000
    assert api.ok("GET", "/user/capacity")["used"] == used
    # copying onto an existing name is a clash
    assert api.post("/file/move", {"uris": [uri("/dst/src")], "dst": uri("/dst"), "copy": True})["code"] == 40004
    api.server.faults.set_capacity(used + 10)
    body = api.post("/file/move", {"uris": [uri("/dst/src")], "dst": uri("/"), "copy": True})
    assert body["code"] == 40051
    assert "src" not in api.names("/")


# --- metadata --------------------------------------------------------------------------------
def test_metadata_patch(api, base):
    made = api.put(f"{base}/m.txt", b"1")
    before = api.info(f"{base}/m.txt")["data"]["updated_at"]
    body = api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")], "patches": [
        {"key": "dav:cloudfs:mode", "value": "0644"}, {"key": "customize:note", "value": "x"}]})
    assert body == {"code": 0, "msg": ""}
    info = api.info(f"{base}/m.txt")["data"]
    assert info["metadata"] == {"dav:cloudfs:mode": "0644", "customize:note": "x"}
    assert info["updated_at"] == before  # dav:/customize: keys keep the mtime
    api.ok("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")],
                                             "patches": [{"key": "tag:red", "value": "#ff0000"}]})
    assert api.info(f"{base}/m.txt")["data"]["updated_at"] != before  # tag: bumps it
    api.ok("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")],
                                             "patches": [{"key": "dav:cloudfs:mode", "remove": True}]})
    assert "dav:cloudfs:mode" not in api.info(f"{base}/m.txt")["data"]["metadata"]
    listed = next(f for f in api.ls(base)["files"] if f["id"] == made["id"])
    assert listed["metadata"]["tag:red"] == "#ff0000"
    for patch in ({"key": "nonamespace", "value": "x"}, {"key": "evil:x", "value": "x"},
                  {"key": "tag:blue", "value": "not-a-color"}, {"key": "sys:upload_session_id", "value": "x"},
                  {"key": "props:x", "value": "1"}, {"key": "tag:", "value": ""}):
        body = api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")], "patches": [patch]})
        assert body["code"] == 40001, patch
    assert api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")], "patches": [
        {"key": "dav:x", "value": "v", "private": True}]}) == {"code": 40001, "msg": "Invalid parameters."}
    assert api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")], "patches": [
        {"value": "v"}]}) == {"code": 40001, "msg": "Key cannot be empty"}
    body = api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt"), uri(f"{base}/gone")],
                                                      "patches": [{"key": "dav:y", "value": "1"}]})
    assert body["code"] == 40081 and uri(f"{base}/gone") in body["aggregated_error"]
    assert api.info(f"{base}/m.txt")["data"]["metadata"]["dav:y"] == "1"
    big = api.call("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/m.txt")],
                                                     "patches": [{"key": "dav:big", "value": "v" * 65536}]})
    assert big["code"] == -1
    assert "dav:big" not in api.info(f"{base}/m.txt")["data"]["metadata"]


def test_force_unlock_unknown_token(api):
    body = api.call("DELETE", "/file/lock", json={"tokens": ["nope"]})
    assert body["code"] == 40001 and body["msg"] == "failed to unlock file"
    assert api.call("DELETE", "/file/lock", json={}) == {"code": 40001, "msg": "Tokens cannot be empty"}


# --- search -------------------------------------------------------------------------------
def test_search_listing(api, base):
    api.mkdir(f"{base}/s/deep/deeper")
    api.put(f"{base}/s/Report.PDF", b"1")
    api.put(f"{base}/s/deep/notes.txt", b"22")
    api.put(f"{base}/s/deep/deeper/report-final.txt", b"333")
    api.put(f"{base}/s/photo.jpg", b"4444")
    api.ok("PATCH", "/file/metadata", json={"uris": [uri(f"{base}/s/photo.jpg")],
                                             "patches": [{"key": "tag:holiday", "value": ""}]})

    def search(query: str, **params) -> dict:
        return api.ok("GET", "/file", params={"uri": uri(f"{base}/s") + "?" + query, "page_size": 100, **params})

    found = search("name=report")
    assert sorted(f["name"] for f in found["files"]) == ["Report.PDF", "report-final.txt"]
    assert found["mixed_type"] is True and found["props"]["order_by_options"] is None
    deep = next(f for f in found["files"] if f["name"] == "report-final.txt")
    assert deep["path"] == f"cloudreve://my{base}/s/deep/deeper/report-final.txt"
    assert [f["name"] for f in search("name=*.txt&type=file")["files"]] == ["notes.txt", "report-final.txt"]
    assert [f["name"] for f in search("type=folder")["files"]] == ["deep", "deeper"]
    assert [f["name"] for f in search("category=image")["files"]] == ["photo.jpg"]
    assert [f["name"] for f in search("meta_tag:holiday=")["files"]] == ["photo.jpg"]
    assert [f["name"] for f in search("size_gte=2&size_lte=3")["files"]] == ["notes.txt", "report-final.txt"]
    assert [f["name"] for f in search("name=notes&name=photo&use_or")["files"]] == ["photo.jpg", "notes.txt"]
    # paging through a search with a level token
    names, token = [], None
    while True:
        extra = {"next_page_token": token} if token else {}
        page = search("name=", page_size=2, **extra)
        names += [f["name"] for f in page["files"]]
        token = page["pagination"].get("next_token")
        if not token:
            break
    assert sorted(names) == sorted(["Report.PDF", "deep", "photo.jpg", "notes.txt", "deeper", "report-final.txt"])
    assert api.get("/file", {"uri": uri(f"{base}/s") + "?category=nope"})["code"] == -1


def test_disabled_features(api, server):
    # the change feed is on (tests/server/test_events.py); full-text search is off
    assert api.get("/file/events", {"uri": "cloudreve://my/"})["msg"] == "Client ID is required"
    import httpx
    assert httpx.get(server.url + "/api/v4/file/search").json()["code"] == 401
