"""v3 dialect: listing, mkdir, create, rename, move, copy, delete, properties."""

from __future__ import annotations

import httpx
import pytest

from .v3helpers import API3, enc_path


def test_root_listing_shape(fresh_api3):
    api = fresh_api3
    api.mkdir("/docs")
    assert api.touch("/readme.txt") == {"code": 0, "msg": ""}
    data = api.ls("/")
    assert set(data) == {"parent", "objects", "policy"}
    assert data["policy"] == {"id": data["policy"]["id"], "name": "Default storage policy", "type": "local",
                              "max_size": 0, "file_type": []}
    folder, file = data["objects"]
    assert set(folder) == {"id", "name", "path", "thumb", "size", "type", "date", "create_date",
                           "source_enabled"}
    assert (folder["name"], folder["type"], folder["path"], folder["thumb"], folder["size"]) == \
        ("docs", "dir", "/", False, 0)
    assert (file["name"], file["type"], file["path"], file["thumb"], file["source_enabled"]) == \
        ("readme.txt", "file", "/", True, False)
    assert file["id"] != folder["id"] and data["parent"] not in (file["id"], folder["id"])
    # the listed folder's id is the parent of its own listing
    assert api.ls("/docs")["parent"] == folder["id"]


def test_nested_listing_paths_and_order(api3):
    api3.mkdir("/order/z-dir")
    api3.touch("/order/b.txt")
    api3.touch("/order/a.txt")
    api3.mkdir("/order/a-dir")
    objects = api3.ls("/order")["objects"]
    # folders first, each kind in creation (id) order: Cloudreve 3 does not sort
    assert [o["name"] for o in objects] == ["z-dir", "a-dir", "b.txt", "a.txt"]
    assert {o["path"] for o in objects} == {"/order"}
    api3.touch("/order/z-dir/deep.txt")
    assert api3.objects("/order/z-dir")["deep.txt"]["path"] == "/order/z-dir"


def test_listing_paths_are_url_decoded_and_raw(api3):
    name = "spaced & ünï #?%.txt".replace("?", "")
    api3.mkdir("/enc dir")
    api3.touch(f"/enc dir/{name}")
    assert api3.names("/enc dir") == [name]
    resp = api3.request("GET", "/directory" + enc_path("/enc dir"))
    assert resp.json()["code"] == 0
    # IsPathExist does not clean: a trailing slash or a double slash is an empty element
    for bad in ("/enc%20dir/", "//enc%20dir", "/nope"):
        assert api3.get("/directory" + bad) == {"code": 40016, "msg": "Path not exist"}


def test_mkdir_is_mkdir_p_and_idempotent(api3):
    assert api3.mkdir("/mk/a/b/c") == {"code": 0, "msg": ""}
    assert api3.mkdir("/mk/a/b/c") == {"code": 0, "msg": ""}
    assert api3.names("/mk/a/b") == ["c"]
    # path.Clean first; trailing spaces of the last element are trimmed
    assert api3.mkdir("/mk/./x/../y/") == {"code": 0, "msg": ""}
    assert api3.mkdir("/mk/trim  ")["code"] == 0
    assert api3.names("/mk") == ["a", "y", "trim"]


@pytest.mark.parametrize("path,code,msg", [
    ("relative/dir", 40053, "Root protected"),
    (".", 40053, "Root protected"),
    ("/mkerr/bad:name", 40052, "Invalid object name"),
    ("/mkerr/" + "x" * 256, 40052, "Invalid object name"),
    ("/mkerr/file.txt", 40004, "Object existed"),
    ("/mkerr/file.txt/sub", 40004, "Object existed"),
    ("", 40001, "Path cannot be empty"),
])
def test_mkdir_errors(api3, path, code, msg):
    api3.touch("/mkerr/file.txt")
    assert api3.mkdir(path) == {"code": code, "msg": msg}


def test_mkdir_root_and_type_errors(api3):
    assert api3.mkdir("/") == {"code": 0, "msg": ""}
    assert api3.call("PUT", "/directory", json={"path": 5}) == {"code": 40001, "msg": "JSON marshall error"}
    assert api3.call("PUT", "/directory", json={"path": "/" + "x" * 65535})["msg"] == "Path too long"


def test_create_file(api3):
    assert api3.touch("/cr/deep/new.txt") == {"code": 0, "msg": ""}
    obj = api3.objects("/cr/deep")["new.txt"]
    assert obj["size"] == 0 and obj["type"] == "file"
    assert api3.touch("/cr/deep/new.txt") == {"code": 40004, "msg": "Object existed"}
    # Go's path.Base drops trailing slashes: "/cr/x/" makes folder /cr/x with a file "x" in it
    assert api3.touch("/cr/x/")["code"] == 0
    assert api3.names("/cr/x") == ["x"]
    assert api3.touch("/cr/bad|name") == {"code": 40052, "msg": "Invalid object name"}
    assert api3.touch("/cr/trailing ") == {"code": 40052, "msg": "Invalid object name"}
    assert api3.touch("rel.txt") == {"code": 40053, "msg": "Root protected"}
    assert api3.touch("/") == {"code": 40052, "msg": "Invalid object name"}
    assert api3.post("/file/create", {}) == {"code": 40001, "msg": "Path cannot be empty"}
    # v3 accepts "." and ".." as names
    assert api3.touch("/cr/..")["code"] == 0
    assert ".." in api3.names("/cr")


def test_create_file_next_to_upload_in_progress(api3):
    sess = api3.session("/cr2", "pending.bin", 10)["data"]
    assert api3.touch("/cr2/pending.bin") == {"code": 40054, "msg": "Upload session existed"}
    assert "pending.bin" not in api3.names("/cr2")  # placeholders are not listed
    api3.call("DELETE", f"/file/upload/{sess['sessionID']}")


def test_rename(api3):
    api3.touch("/rn/old.txt")
    api3.mkdir("/rn/olddir")
    before = api3.objects("/rn")
    assert api3.rename("new.txt", items=[before["old.txt"]["id"]]) == {"code": 0, "msg": ""}
    assert api3.rename("newdir", dirs=[before["olddir"]["id"]]) == {"code": 0, "msg": ""}
    after = api3.objects("/rn")
    assert set(after) == {"new.txt", "newdir"}
    # a renamed file gets a new date (gorm Updates), a renamed folder keeps it (UpdateColumn)
    assert after["new.txt"]["date"] != before["old.txt"]["date"]
    assert after["newdir"]["date"] == before["olddir"]["date"]
    assert after["new.txt"]["id"] == before["old.txt"]["id"]


def test_rename_errors(api3):
    api3.touch("/rne/a.txt")
    api3.touch("/rne/b.txt")
    a, b = api3.id_of("/rne/a.txt"), api3.id_of("/rne/b.txt")
    dir_id = api3.folder_id("/rne")
    assert api3.rename("b.txt", items=[a]) == {"code": 40004, "msg": "Object existed"}
    assert api3.rename("x:y", items=[a]) == {"code": 40052, "msg": "Invalid object name"}
    assert api3.rename("ok", items=[a, b]) == {"code": 40001, "msg": "You can only copy one object at the same time"}
    assert api3.rename("ok", items=["garbage"]) == {"code": 40016, "msg": "Path not exist"}
    assert api3.rename("ok", items=[dir_id]) == {"code": 40016, "msg": "Path not exist"}  # folder id as file
    assert api3.rename("ok") == {"code": 40016, "msg": "Path not exist"}
    assert api3.rename("") == {"code": 40001, "msg": "NewName cannot be empty"}
    assert api3.rename("x" * 256, items=[a]) == {"code": 40001, "msg": "NewName too long"}
    assert api3.rename("é" * 200, items=[a]) == {"code": 40052, "msg": "Invalid object name"}  # 400 bytes
    assert api3.rename("ok", dirs=[api3.folder_id("/")]) == {"code": 40053, "msg": "Root protected"}


def test_move(api3):
    api3.touch("/mv/src/f1.txt")
    api3.touch("/mv/src/f2.txt")
    api3.mkdir("/mv/src/sub/inner")
    api3.mkdir("/mv/dst")
    src = api3.objects("/mv/src")
    assert api3.move("/mv/src", "/mv/dst", items=[src["f1.txt"]["id"]], dirs=[src["sub"]["id"]]) == \
        {"code": 0, "msg": ""}
    assert api3.names("/mv/dst") == ["sub", "f1.txt"]
    assert api3.names("/mv/dst/sub") == ["inner"]
    assert api3.names("/mv/src") == ["f2.txt"]
    moved = api3.objects("/mv/dst")["f1.txt"]
    assert moved["id"] == src["f1.txt"]["id"] and moved["date"] != src["f1.txt"]["date"]
    # ids not directly in src_dir are skipped silently; undecodable ids too
    assert api3.move("/mv/src", "/mv/dst", items=[moved["id"], "junk"]) == {"code": 0, "msg": ""}
    assert "f1.txt" in api3.names("/mv/dst")


def test_move_errors(api3):
    api3.touch("/mve/a/clash.txt")
    api3.touch("/mve/b/clash.txt")
    api3.mkdir("/mve/a/child/grandchild")
    a = api3.objects("/mve/a")
    assert api3.move("/mve/a", "/mve/b", items=[a["clash.txt"]["id"]]) == {"code": 40004, "msg": "Object existed"}
    assert api3.move("/mve/nope", "/mve/b") == {"code": 40016, "msg": "Path not exist"}
    assert api3.move("/mve/a", "/mve/nope") == {"code": 40016, "msg": "Path not exist"}
    assert api3.move("/mve/a/", "/mve/b") == {"code": 40016, "msg": "Path not exist"}  # raw path lookup
    child = a["child"]["id"]
    assert api3.move("/mve/a", "/mve/a/child", dirs=[child]) == {"code": 40004, "msg": "Object existed"}
    assert api3.move("/mve/a", "/mve/a/child/grandchild", dirs=[child]) == {"code": 40004, "msg": "Object existed"}
    assert api3.call("PATCH", "/object", json={"src": {}, "dst": "/"}) == \
        {"code": 40001, "msg": "SrcDir cannot be empty"}
    assert api3.call("PATCH", "/object", json={"src_dir": "/", "src": {}}) == \
        {"code": 40001, "msg": "Dst cannot be empty"}
    assert api3.call("PATCH", "/object", json={"src_dir": "/", "dst": "/", "src": {"items": [1]}}) == \
        {"code": 40001, "msg": "JSON marshall error"}


def test_copy_file_and_folder(api3):
    api3.upload("/cp/src/data.bin", b"0123456789")
    api3.mkdir("/cp/src/tree/leaf")
    api3.upload("/cp/src/tree/leaf/deep.bin", b"deep")
    api3.mkdir("/cp/dst")
    used = api3.storage()["used"]
    src = api3.objects("/cp/src")
    assert api3.copy("/cp/src", "/cp/dst", items=[src["data.bin"]["id"]]) == {"code": 0, "msg": ""}
    assert api3.copy("/cp/src", "/cp/dst", dirs=[src["tree"]["id"]]) == {"code": 0, "msg": ""}
    assert api3.names("/cp/dst") == ["tree", "data.bin"]
    assert api3.names("/cp/dst/tree/leaf") == ["deep.bin"]
    assert api3.download("/cp/dst/tree/leaf/deep.bin").content == b"deep"
    assert api3.storage()["used"] == used + 14  # copies are charged
    # a copy into the same folder clashes: Cloudreve 3 calls that "Object not exist"
    assert api3.copy("/cp/src", "/cp/src", items=[src["data.bin"]["id"]]) == {"code": 40016, "msg": "Object not exist"}
    assert api3.copy("/cp/src", "/cp/dst", items=[src["data.bin"]["id"], src["tree"]["id"]]) == \
        {"code": 40001, "msg": "You can only copy one object at the same time"}
    assert api3.copy("/cp/nope", "/cp/dst", items=[src["data.bin"]["id"]]) == {"code": 40016, "msg": "Path not exist"}
    # a copied file is independent of its source afterwards
    api3.call("PUT", f"/file/update/{api3.id_of('/cp/dst/data.bin')}", content=b"changed")
    assert api3.download("/cp/src/data.bin").content == b"0123456789"


def test_delete_files_and_folders(api3):
    api3.upload("/del/keep.bin", b"k")
    api3.upload("/del/gone.bin", b"12345")
    api3.upload("/del/tree/a/b.bin", b"abc")
    api3.session("/del/tree/a", "pending.bin", 100)
    used = api3.storage()["used"]
    objects = api3.objects("/del")
    assert api3.delete(items=[objects["gone.bin"]["id"]], dirs=[objects["tree"]["id"]]) == {"code": 0, "msg": ""}
    assert api3.names("/del") == ["keep.bin"]
    assert api3.storage()["used"] == used - 8
    # unknown, foreign-kind and undecodable ids are ignored
    assert api3.delete(items=[objects["gone.bin"]["id"], "junk", objects["tree"]["id"]]) == {"code": 0, "msg": ""}
    assert api3.call("DELETE", "/object", json={"items": "x"}) == {"code": 40001, "msg": "JSON marshall error"}
    # the same upload name is free again: the placeholder went with its folder
    assert api3.session("/del/tree/a", "pending.bin", 100)["code"] == 0


def test_delete_root_keeps_root_files(fresh_api3):
    api = fresh_api3
    api.upload("/top.bin", b"top")
    api.upload("/dir/inner.bin", b"inner")
    assert api.delete(dirs=[api.folder_id("/")]) == {"code": 0, "msg": ""}
    assert api.names("/") == ["top.bin"]
    assert api.storage()["used"] == 3


def test_delete_file_listed_twice_fails_whole(api3):
    api3.upload("/twice/x.bin", b"x")
    objects = api3.objects("/")
    x = api3.id_of("/twice/x.bin")
    assert api3.delete(items=[x], dirs=[objects["twice"]["id"]]) == \
        {"code": 50001, "msg": "Failed to delete object records"}
    assert api3.names("/twice") == ["x.bin"]


def test_file_property(api3):
    api3.upload("/prop/sub/f.bin", b"12345", last_modified=1714481625683)
    fid = api3.id_of("/prop/sub/f.bin")
    data = api3.ok("GET", f"/object/property/{fid}")
    assert set(data) == {"created_at", "updated_at", "policy", "size", "child_folder_num", "child_file_num",
                         "path", "query_date"}
    assert data["size"] == 5 and data["policy"] == "Default storage policy" and data["path"] == ""
    assert data["updated_at"].startswith("2024-04-30T") and ".683" in data["updated_at"]
    assert api3.ok("GET", f"/object/property/{fid}", params={"trace_root": "true"})["path"] == "/prop/sub"
    api3.upload("/rootfile.bin", b"r")
    assert api3.ok("GET", f"/object/property/{api3.id_of('/rootfile.bin')}",
                   params={"trace_root": "1"})["path"] == "/"


def test_folder_property_is_cached(api3):
    api3.upload("/fp/a.bin", b"aaa")
    api3.upload("/fp/s1/s2/b.bin", b"bb")
    api3.session("/fp/s1", "pending.bin", 9)  # placeholders count as files
    fid = api3.folder_id("/fp")
    data = api3.ok("GET", f"/object/property/{fid}", params={"is_folder": "true", "trace_root": "true"})
    assert (data["size"], data["child_folder_num"], data["child_file_num"], data["path"], data["policy"]) == \
        (5, 2, 3, "/", "")
    api3.upload("/fp/more.bin", b"more")
    again = api3.ok("GET", f"/object/property/{fid}", params={"is_folder": "true"})
    assert again["size"] == 5 and again["path"] == "/" and again["query_date"] == data["query_date"]
    sub = api3.ok("GET", f"/object/property/{api3.folder_id('/fp/s1/s2')}",
                  params={"is_folder": "true", "trace_root": "true"})
    assert sub["path"] == "/fp/s1" and sub["child_folder_num"] == 0


def test_property_errors(v3_server, api3):
    api3.upload("/pe/f.bin", b"f")
    fid, dir_id = api3.id_of("/pe/f.bin"), api3.folder_id("/pe")
    assert api3.get(f"/object/property/{fid}", {"is_folder": "true"}) == {"code": 404, "msg": ""}
    assert api3.get(f"/object/property/{dir_id}") == {"code": 404, "msg": ""}
    assert api3.get(f"/object/property/{fid}", {"is_folder": "maybe"}) == {"code": 40001, "msg": "Parameter error"}
    api3.delete(items=[fid])
    # GetFilesByIDs finds nothing and the handler indexes [0]: gin's recovery answers a bare 500
    resp = api3.request("GET", f"/object/property/{fid}")
    assert resp.status_code == 500 and resp.content == b""
    assert httpx.get(v3_server.url + API3 + "/site/ping").status_code == 200
