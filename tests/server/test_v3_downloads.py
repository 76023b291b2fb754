"""v3 dialect: download sessions, signed URLs, ServeContent semantics (Go 1.18)."""

from __future__ import annotations

import os
import re
import time
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cloudfs.server.testing import start_server

from .v3helpers import Api3

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(scope="module")
def file_url(v3_server):
    with Api3(v3_server) as api:
        api.upload("/dl/data.bin", DATA, last_modified=1714481625683)
        api.upload("/dl/notes.txt", b"hello text\n")
        api.touch("/dl/empty.txt")
        api.upload("/dl/名前 file.bin", b"x")
        yield api.url("/dl/data.bin")


def get(server, url, **headers):
    return httpx.get(server.url + url, headers=headers)


def test_url_shape(v3_server, file_url):
    assert re.fullmatch(r"/api/v3/file/download/[0-9a-zA-Z]{16}\?sign=[A-Za-z0-9_\-]+%3D%3A\d+", file_url)
    sign = parse_qs(urlsplit(file_url).query)["sign"][0]
    assert 595 <= int(sign.rsplit(":", 1)[1]) - time.time() <= 601  # download_timeout 600 s


def test_full_download_headers(v3_server, file_url):
    resp = get(v3_server, file_url)
    assert resp.status_code == 200 and resp.content == DATA
    h = resp.headers
    assert h["content-length"] == str(len(DATA)) and h["accept-ranges"] == "bytes"
    assert h["cache-control"] == "public, max-age=86400"
    assert h["content-disposition"] == 'attachment; filename="data.bin"'
    assert h["last-modified"] == "Tue, 30 Apr 2024 12:53:45 GMT"
    assert "etag" not in h and "set-cookie" not in h
    # a URL can be used any number of times until it expires
    assert get(v3_server, file_url).content == DATA


def test_content_types_and_disposition(v3_server, api3, file_url):
    resp = api3.download("/dl/notes.txt")
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    empty = api3.download("/dl/empty.txt")
    assert empty.status_code == 200 and empty.content == b"" and empty.headers["content-length"] == "0"
    named = api3.download("/dl/名前 file.bin")
    assert named.headers["content-disposition"] == 'attachment; filename="%E5%90%8D%E5%89%8D%20file.bin"'


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-99", 0, 99), ("bytes=100-", 100, 10239), ("bytes=-100", 10140, 10239),
    ("bytes=10000-99999", 10000, 10239), ("bytes=-99999", 0, 10239), ("items=5-5", None, None),
])
def test_single_ranges(v3_server, file_url, rng, start, end):
    resp = get(v3_server, file_url, Range=rng)
    if start is None:  # not a "bytes=" range: invalid
        assert resp.status_code == 416
        return
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.content == DATA[start:end + 1]


def test_multi_range(v3_server, file_url):
    resp = get(v3_server, file_url, Range="bytes=0-9,20-29")
    assert resp.status_code == 206
    ctype = resp.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("=", 1)[1]
    assert len(boundary) == 60
    body = resp.content
    assert int(resp.headers["content-length"]) == len(body)
    assert b"Content-Range: bytes 0-9/10240" in body and b"Content-Range: bytes 20-29/10240" in body
    assert DATA[0:10] in body and DATA[20:30] in body and body.endswith(f"--{boundary}--\r\n".encode())


@pytest.mark.parametrize("rng,overlap", [("bytes=10240-", True), ("bytes=99999-100000", True),
                                         ("bytes=5-1", False), ("bytes=x-y", False), ("bytes=--5", False)])
def test_unsatisfiable_ranges(v3_server, file_url, rng, overlap):
    resp = get(v3_server, file_url, Range=rng)
    assert resp.status_code == 416
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-content-type-options"] == "nosniff"
    if overlap:
        assert resp.headers["content-range"] == "bytes */10240"
        assert resp.text == "invalid range: failed to overlap\n"
    else:
        assert "content-range" not in resp.headers and resp.text == "invalid range\n"


def test_range_on_empty_file_is_416(v3_server, api3, file_url):
    resp = api3.http.get(api3.url("/dl/empty.txt"), headers={"Range": "bytes=0-"})
    assert resp.status_code == 416 and resp.headers["content-range"] == "bytes */0"


def test_ranges_larger_than_the_file_are_ignored(v3_server, file_url):
    resp = get(v3_server, file_url, Range="bytes=0-10239,0-10239")
    assert resp.status_code == 200 and resp.content == DATA


def test_conditional_requests(v3_server, file_url):
    modified = "Tue, 30 Apr 2024 12:53:45 GMT"
    later, earlier = "Tue, 30 Apr 2024 12:53:46 GMT", "Tue, 30 Apr 2024 12:53:44 GMT"
    resp = get(v3_server, file_url, **{"If-Modified-Since": modified})
    assert resp.status_code == 304 and resp.content == b"" and resp.headers["last-modified"] == modified
    assert get(v3_server, file_url, **{"If-Modified-Since": earlier}).status_code == 200
    assert get(v3_server, file_url, **{"If-Modified-Since": "garbage"}).status_code == 200
    assert get(v3_server, file_url, **{"If-Unmodified-Since": earlier}).status_code == 412
    assert get(v3_server, file_url, **{"If-Unmodified-Since": later}).status_code == 200
    # there is no ETag: If-Match fails unless "*", If-None-Match only matches "*"
    assert get(v3_server, file_url, **{"If-Match": '"abc"'}).status_code == 412
    assert get(v3_server, file_url, **{"If-Match": "*"}).status_code == 200
    assert get(v3_server, file_url, **{"If-None-Match": "*"}).status_code == 304
    assert get(v3_server, file_url, **{"If-None-Match": '"abc"', "If-Modified-Since": modified}).status_code == 200


def test_if_range(v3_server, file_url):
    modified = "Tue, 30 Apr 2024 12:53:45 GMT"
    assert get(v3_server, file_url, Range="bytes=0-0", **{"If-Range": modified}).status_code == 206
    assert get(v3_server, file_url, Range="bytes=0-0", **{"If-Range": "Tue, 30 Apr 2024 12:53:46 GMT"}) \
        .status_code == 200
    assert get(v3_server, file_url, Range="bytes=0-0", **{"If-Range": '"etag"'}).status_code == 200


def test_signature_errors(v3_server, file_url):
    path, query = file_url.split("?", 1)
    sign = parse_qs(query)["sign"][0]
    mac, expires = sign.rsplit(":", 1)
    cases = [
        ("", 403, "expire timestamp is missing"),
        (f"?sign={mac}:", 403, "expire timestamp is missing"),
        (f"?sign={mac}:abc", 40071, "invalid sign"),
        (f"?sign={mac}:{int(expires) + 1}", 40071, "invalid sign"),
        (f"?sign=AAAA:{expires}", 40071, "invalid sign"),
        (f"?sign={mac}:{int(time.time()) - 10}", 40005, "signature expired"),
    ]
    for q, code, msg in cases:
        resp = httpx.get(v3_server.url + path + q)
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "private, no-cache"
        assert resp.json() == {"code": code, "msg": msg}, q
    other = path[:-1] + ("A" if path[-1] != "A" else "B")
    assert httpx.get(v3_server.url + other + "?" + query).json()["code"] == 40071


def test_unknown_key_and_deleted_file(v3_server, api3):
    api3.upload("/dl2/gone.bin", b"soon gone")
    url = api3.url("/dl2/gone.bin")
    fake = re.sub(r"download/[0-9a-zA-Z]{16}", "download/" + "x" * 16, url)
    resp = httpx.get(v3_server.url + fake)
    assert resp.json()["code"] == 40071  # the signature covers the key
    api3.delete(items=[api3.id_of("/dl2/gone.bin")])
    resp = httpx.get(v3_server.url + url)
    assert resp.json() == {"code": 50004, "msg": "Failed to read file data"}


def test_url_snapshot_keeps_name_and_survives_rename(v3_server, api3):
    api3.upload("/dl3/orig.bin", b"abc")
    url = api3.url("/dl3/orig.bin")
    api3.rename("renamed.bin", items=[api3.id_of("/dl3/orig.bin")])
    resp = httpx.get(v3_server.url + url)
    assert resp.content == b"abc" and resp.headers["content-disposition"] == 'attachment; filename="orig.bin"'


def test_download_url_errors(api3):
    api3.mkdir("/dl4")
    assert api3.call("PUT", f"/file/download/{api3.folder_id('/dl4')}") == \
        {"code": 40001, "msg": "Failed to parse object ID"}
    api3.upload("/dl4/f.bin", b"f")
    fid = api3.id_of("/dl4/f.bin")
    api3.delete(items=[fid])
    assert api3.call("PUT", f"/file/download/{fid}") == {"code": 40016, "msg": "Object not exist"}


def test_url_ttl_and_expiry(tmp_path):
    with start_server(tmp_path, dialect="v3", extra_args=["--url-ttl", "1"]) as srv, Api3(srv) as api:
        api.upload("/t.bin", os.urandom(10))
        url = api.url("/t.bin")
        assert httpx.get(srv.url + url).status_code == 200
        time.sleep(2.1)
        assert httpx.get(srv.url + url).json() == {"code": 40005, "msg": "signature expired"}


def test_last_modified_follows_upload_time(api3):
    before = time.time()
    api3.upload("/dl5/now.bin", b"n")
    stamp = parsedate_to_datetime(api3.download("/dl5/now.bin").headers["last-modified"]).timestamp()
    assert int(before) - 1 <= stamp <= time.time()
    assert formatdate(stamp, usegmt=True)
