"""KooDrive emulator: listing by cursor (short-page switch), detail, directory, rename."""

from __future__ import annotations

import re

import pytest

from .koohelpers import KooApi, switches

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # createFile's yyyy-MM-dd'T'HH:mm:ss'Z'


@pytest.fixture(scope="module")
def folder(kd_server):
    """A folder with 7 subfolders and 23 small files."""
    with KooApi(kd_server) as api:
        top = api.mkdir("listing")["id"]
        for i in range(7):
            api.mkdir(f"d{i}", top)
        for i in range(23):
            api.upload(f"f{i:02d}.bin", bytes([i]) * (i + 1), top)
        return top


def test_pages_follow_next_cursor(kapi, folder):
    first = kapi.page(folder, size=10)
    assert first["category"] == 0 and len(first["files"]) == 10 and first["nextCursor"]
    names = [f["fileName"] for f in kapi.ls(folder, size=10)]
    assert names == [f"d{i}" for i in range(7)] + [f"f{i:02d}.bin" for i in range(23)]  # folders first, by name
    last = kapi.page(folder, size=30)
    assert len(last["files"]) == 30 and last["nextCursor"] == ""


def test_short_and_empty_pages_before_the_end(kapi, folder):
    switches(kapi.server, short_pages=True)
    sizes, cursor, names = [], "", []
    while True:
        page = kapi.page(folder, cursor, size=10)
        sizes.append(len(page["files"]))
        names += [f["fileName"] for f in page["files"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert 0 in sizes[:-1] and all(s < 10 for s in sizes)
    assert len(names) == 30 and len(set(names)) == 30


def test_sorting(kapi, folder):
    body = kapi.page(folder, size=100, sortInfo={"sortType": 2, "sortDirection": 2})
    files = [f for f in body["files"] if f["fileType"] != "10"]
    assert [f["size"] for f in files] == sorted((f["size"] for f in files), reverse=True)
    assert kapi.error("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder,
                                                "sortInfo": {"sortType": 9}}) == 13000102


def test_page_size_over_the_maximum(kapi, folder):
    assert len(kapi.page(folder, size=500)["files"]) == 30  # clamped to 100 by default
    switches(kapi.server, max_page_size=20)
    assert len(kapi.page(folder, size=500)["files"]) == 20
    switches(kapi.server, page_size_over_max="reject")
    assert kapi.error("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder,
                                                "pageInfo": {"pageSize": 21}}) == 13000102


def test_first_cursor_zero_and_type_filter(kapi, folder):
    assert len(kapi.page(folder, cursor="0", size=100)["files"]) == 30
    folders = kapi.ok("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder,
                                                "fileType": "10"})["files"]
    assert len(folders) == 7 and {f["fileType"] for f in folders} == {"10"}
    kapi.upload("typed.doc", b"t", folder, fileType="doc")
    typed = kapi.ok("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder,
                                              "fileType": "doc"})["files"]
    assert [f["fileName"] for f in typed] == ["typed.doc"]
    kapi.run_job(2, 202, [typed[0]["id"]])


def test_bad_cursor_and_wrong_container(kapi, folder):
    assert kapi.error("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": folder,
                                                "pageInfo": {"pageCursor": "!!"}}) == 13000102
    assert kapi.error("POST", "/files/0", json={"containerId": "0" * 32, "parentFileId": folder}) == 13000302
    assert kapi.error("POST", "/files/0", json={"parentFileId": folder}) == 13000102
    assert kapi.error("POST", "/files/0", json={"containerId": kapi.container, "parentFileId": "nope"}) == 13000309


def test_detail_fields_and_types(kapi):
    data = b"detail me"
    fid = kapi.upload("detail.txt", data)
    item = kapi.detail(fid)
    assert item["id"] == fid and item["fileName"] == "detail.txt" and item["fileType"] == "0"
    assert item["size"] == len(data) and isinstance(item["size"], int) and item["fileSuffix"] == "txt"
    assert item["mimeType"] == "text/plain" and item["recycled"] is False
    assert item["parentFolder"] == [kapi.space()["bizRootFileId"]]
    assert ISO.fullmatch(item["createdTime"]) and ISO.fullmatch(item["editedTime"])
    assert "sha256" not in item
    switches(kapi.server, item_sha256=True, time_format="epoch_ms")
    item = kapi.detail(fid)
    assert len(item["sha256"]) == 64 and isinstance(item["editedTime"], int)
    switches(kapi.server, time_format="iso_ms")
    assert re.fullmatch(r"\S+T\d\d:\d\d:\d\d\.\d{3}Z", kapi.detail(fid)["editedTime"])


def test_detail_of_unknown_ids(kapi):
    for bad in ("zzzzzzzz", "", "root2"):
        assert kapi.error("POST", f"/files/{bad or 'x'}/detail", json={"containerId": kapi.container}) == 13000309
    assert kapi.error("POST", "/files/nope/detail", json={"containerId": "f" * 32}) == 13000302


def test_mkdir_rename_modes_and_names(kapi):
    parent = kapi.mkdir("modes")["id"]
    kapi.mkdir("same", parent)
    assert kapi.error("POST", "/directory", json={"fileName": "same", "fileType": "10", "containerId": kapi.container,
                                                  "parentFolder": [parent], "renameMode": 3}) == 13000405
    second = kapi.mkdir("same", parent, renameMode=2)
    assert re.fullmatch(r"same_\d{14}", second["fileName"])
    for bad in ("a/b", "a:b", "..", ".", "x" * 251, ""):
        assert kapi.error("POST", "/directory", json={"fileName": bad, "fileType": "10",
                                                      "containerId": kapi.container, "parentFolder": [parent]}) == 13000102
    file_id = kapi.upload("f.txt", b"x", parent)
    assert kapi.error("POST", "/directory", json={"fileName": "under-file", "fileType": "10",
                                                  "containerId": kapi.container, "parentFolder": [file_id]}) == 13000304


def test_depth_limit(kapi):
    switches(kapi.server, max_depth=3)
    a = kapi.mkdir("deep1")["id"]
    b = kapi.mkdir("deep2", a)["id"]
    c = kapi.mkdir("deep3", b)["id"]
    assert kapi.error("POST", "/directory", json={"fileName": "deep4", "fileType": "10", "containerId": kapi.container,
                                                  "parentFolder": [c]}) == 13000310


def test_rename(kapi):
    parent = kapi.mkdir("renames")["id"]
    fid = kapi.upload("old.txt", b"content", parent)
    kapi.upload("taken.txt", b"other", parent)
    edited = kapi.detail(fid)["editedTime"]
    body = kapi.ok("POST", f"/files/rename/{fid}", json={"containerId": kapi.container, "name": "new.txt",
                                                        "renameMode": 3})
    assert body == {"code": 0, "msg": "success"}
    assert sorted(kapi.names(parent)) == ["new.txt", "taken.txt"]
    assert kapi.detail(fid)["editedTime"] == edited  # a rename is not an edit
    assert kapi.error("POST", f"/files/rename/{fid}", json={"containerId": kapi.container, "name": "taken.txt",
                                                           "renameMode": 3}) == 13000405
    assert kapi.error("POST", f"/files/rename/{fid}", json={"containerId": kapi.container, "name": "a\\b"}) == 13000102
    assert kapi.error("POST", "/files/rename/nope", json={"containerId": kapi.container, "name": "x"}) == 13000309
    switches(kapi.server, rename_max_len=80)
    assert kapi.error("POST", f"/files/rename/{fid}", json={"containerId": kapi.container, "name": "n" * 81}) == 13000102


def test_a_large_folder_pages_completely(kd_fresh):
    from cloudfs.server.store import seed_bulk_folder

    seed_bulk_folder(kd_fresh.data_dir, ["bulk"], 2500, folders=30)
    with KooApi(kd_fresh) as api:
        bulk = next(f["id"] for f in api.ls() if f["fileName"] == "bulk")
        names = [f["fileName"] for f in api.ls(bulk)]
    assert len(names) == 2530 and len(set(names)) == 2530
    assert names[:30] == [f"d{i:04d}" for i in range(30)] and names[30] == "f0000"


def test_code_type_switch(kapi):
    assert kapi.request("POST", "/files/0", json={"containerId": kapi.container}).json()["code"] == 0
    switches(kapi.server, code_as="string")
    assert kapi.request("POST", "/files/0", json={"containerId": kapi.container}).json()["code"] == "0"
    assert kapi.error("POST", "/files/nope/detail", json={"containerId": kapi.container}) == "13000309"
    switches(kapi.server, code_as="int")
    body = kapi.request("GET", "/jobs", params={"offset": 0, "limit": 1}).json()
    assert body["code"] == 0
