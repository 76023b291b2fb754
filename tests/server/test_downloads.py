"""Signed download URLs and the content endpoint (Range, conditional requests)."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cloudfs.server.testing import start_server

from .helpers import API, Api, uri

DATA = os.urandom(100_000)


@pytest.fixture(scope="module")
def blob(server):
    with Api(server) as api:
        api.mkdir("/dl")
        api.upload("/dl/data.bin", DATA)
        api.put("/dl/hello world ü.txt", b"hello")
        api.touch("/dl/empty")
        api.mkdir("/dl/folder")
        yield api.url("/dl/data.bin"), api.info("/dl/data.bin")["data"]


def test_url_shape(api, blob):
    data = api.ok("POST", "/file/url", json={"uris": [uri("/dl/data.bin")]})
    assert set(data) == {"urls", "expires"} and set(data["urls"][0]) == {"url"}
    url = data["urls"][0]["url"]
    parts = urlsplit(url)
    entity = blob[1]["primary_entity"]
    assert parts.path == f"{API}/file/content/{entity}/0/data.bin"
    sign = parse_qs(parts.query)["sign"][0]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=:\d+", sign)
    expires = dt.datetime.fromisoformat(data["expires"])
    assert int(sign.rsplit(":", 1)[1]) == int(expires.timestamp())
    assert 3500 < expires.timestamp() - time.time() <= 3600
    # URLs are cached server-side for ttl - 600 s
    assert api.url("/dl/data.bin") == url
    assert httpx.get(api.url("/dl/data.bin", no_cache=True)).content == DATA
    # no Authorization needed
    resp = httpx.get(url)
    assert resp.status_code == 200 and resp.content == DATA


def test_content_headers(blob):
    url, info = blob
    resp = httpx.get(url)
    assert resp.headers["etag"] == f'"{info["primary_entity"]}"'
    assert "last-modified" not in resp.headers
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["content-length"] == str(len(DATA))
    assert resp.headers["cache-control"] == "public, max-age=86400"
    assert resp.headers["content-security-policy"] == "sandbox"
    assert resp.headers["content-type"] == "application/octet-stream"
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(DATA))
    assert "content-security-policy" not in head.headers
    cors = httpx.get(url, headers={"Origin": "https://example.com", "Range": "bytes=0-0"})
    assert cors.headers["access-control-allow-origin"] == "*"
    pre = httpx.options(url, headers={"Origin": "https://example.com", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 204 and "GET" in pre.headers["access-control-allow-methods"]


def test_download_names_and_disposition(api, blob):
    url = api.url("/dl/hello world ü.txt", download=True)
    assert "/hello%20world%20%C3%BC.txt?" in url and "download=true" in url
    resp = httpx.get(url)
    assert resp.content == b"hello"
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["content-disposition"] == (
        "attachment; filename=\"hello world _.txt\"; filename*=UTF-8''hello%20world%20%C3%BC.txt")


@pytest.mark.parametrize("header,status,expected", [
    ("bytes=0-9", 206, DATA[:10]),
    ("bytes=99990-", 206, DATA[99990:]),
    ("bytes=-5", 206, DATA[-5:]),
    ("bytes=50000-200000", 206, DATA[50000:]),
    ("bytes=-200000", 206, DATA),
    ("bytes=5-4", 416, None),
    ("bytes=200000-", 416, None),
    ("items=0-1", 416, None),
    ("bytes=x-1", 416, None),
])
def test_single_ranges(blob, header, status, expected):
    url, _ = blob
    resp = httpx.get(url, headers={"Range": header})
    assert resp.status_code == status, resp.text
    if expected is not None:
        assert resp.content == expected
        start = DATA.find(expected) if expected != DATA else 0
        assert resp.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(DATA)}"
    elif header == "bytes=200000-":
        assert resp.headers["content-range"] == f"bytes */{len(DATA)}"


def test_multi_range(blob):
    url, _ = blob
    resp = httpx.get(url, headers={"Range": "bytes=0-1,10-12,-2"})
    assert resp.status_code == 206
    ctype = resp.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=")[1]
    assert int(resp.headers["content-length"]) == len(resp.content)
    parts = resp.content.split(f"--{boundary}".encode())
    assert parts[-1] == b"--\r\n"
    bodies = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts[1:-1]]
    assert bodies == [DATA[0:2], DATA[10:13], DATA[-2:]]
    assert b"Content-Range: bytes 10-12/100000" in resp.content
    # overlapping ranges larger than the file are ignored -> full body
    whole = httpx.get(url, headers={"Range": "bytes=0-99999,0-99999"})
    assert whole.status_code == 200 and whole.content == DATA


def test_conditional_requests(blob):
    url, info = blob
    etag = f'"{info["primary_entity"]}"'
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(url, headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert httpx.get(url, headers={"If-Match": '"other"'}).status_code == 412
    assert httpx.get(url, headers={"If-Match": etag}).status_code == 200
    ranged = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert ranged.status_code == 206 and ranged.content == DATA[:4]
    full = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert full.status_code == 200 and full.content == DATA


def test_signature_failures(blob):
    url, _ = blob
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    sign = parse_qs(parts.query)["sign"][0]
    mac, expires = sign.rsplit(":", 1)
    cases = [
        (base, 403, "expire timestamp is missing"),
        (base + "?sign=" + mac.replace(mac[5], "A" if mac[5] != "A" else "B") + "%3A" + expires, 40071, "invalid sign"),
        (base + "?sign=" + mac + "%3Aabc", 40071, "sign expired"),
        (base + "?sign=" + mac + "%3A" + str(int(time.time()) - 10), 40005, "signature expired"),
        (base.replace("/data.bin", "/other.bin") + "?" + parts.query, 40071, "invalid sign"),
    ]
    for target, code, msg in cases:
        resp = httpx.get(target)
        assert resp.status_code == 200, target
        body = resp.json()
        assert body["code"] == code and body["msg"] == msg, (target, body)
        assert "etag" not in resp.headers


def test_url_errors(api, blob):
    body = api.post("/file/url", {"uris": [uri("/dl/folder"), uri("/dl/data.bin"), uri("/dl/nope")]})
    assert body["code"] == 40081
    agg = body["aggregated_error"]
    assert agg[uri("/dl/folder")]["code"] == 40077 and agg[uri("/dl/nope")]["code"] == 40016
    skipped = api.ok("POST", "/file/url", json={"uris": [uri("/dl/folder"), uri("/dl/data.bin")],
                                                 "skip_error": True})
    assert skipped["urls"][0] == {"url": ""} and skipped["urls"][1]["url"]
    assert api.ok("POST", "/file/url", json={"uris": []}) == {"urls": [], "expires": None}
    assert api.post("/file/url", {"uris": [uri("/dl/data.bin")], "archive": True})["code"] == 40007
    redirect = api.request("POST", "/file/url", json={"uris": [uri("/dl/data.bin")], "redirect": True})
    assert redirect.status_code == 302 and "/file/content/" in redirect.headers["location"]
    bad_entity = api.post("/file/url", {"uris": [uri("/dl/data.bin")], "entity": "nope"})
    assert bad_entity["aggregated_error"][uri("/dl/data.bin")]["code"] == 40077


def test_empty_file_url(api, blob):
    url = api.url("/dl/empty")
    resp = httpx.get(url)
    assert resp.status_code == 200 and resp.content == b"" and resp.headers["etag"]
    assert httpx.get(url, headers={"Range": "bytes=0-10"}).status_code == 200


def test_bad_entity_and_missing_blob(server, api, blob):
    url, info = blob
    wrong = httpx.get(url.replace(info["primary_entity"], "zzzzzz", 1))
    assert wrong.json()["code"] == 40071  # the path is signed, so tampering fails the signature first
    # a URL signed for a file whose blob vanished from disk: plain 404 text
    api.put("/dl/vanish.txt", b"soon gone")
    vurl = api.url("/dl/vanish.txt")
    for path in (server.data_dir / "blobs").rglob("*"):
        if path.is_file() and path.read_bytes() == b"soon gone":
            path.unlink()
    resp = httpx.get(vurl)
    assert resp.status_code == 404 and resp.text == "Entity data does not exist.\n"


def test_expired_url(tmp_path):
    with start_server(tmp_path, extra_args=["--url-ttl", "1"]) as srv, Api(srv) as api:
        api.put("/x.txt", b"x")
        url = api.url("/x.txt")
        assert httpx.get(url).content == b"x"
        time.sleep(2.1)
        body = httpx.get(url).json()
        assert body["code"] == 40005 and body["msg"] == "signature expired"
        fresh = api.url("/x.txt")
        assert fresh != url and httpx.get(fresh).content == b"x"


def test_replaced_version_urls(api):
    api.mkdir("/ver")
    old = os.urandom(3 << 20)
    api.put("/ver/a.bin", old)
    old_url = api.url("/ver/a.bin")
    # a download already streaming finishes with the old content even if replaced meanwhile
    with api.http.stream("GET", old_url) as resp:
        stream = resp.iter_bytes(1 << 16)
        first = next(stream)
        api.put("/ver/a.bin", b"new content")
        rest = b"".join(stream)
    assert first + rest == old
    assert httpx.get(old_url).json()["code"] == 40077  # pruned, nothing else references it
    # while another file still shares the old entity (a copy), its URL keeps working
    api.put("/ver/b.bin", b"version one")
    api.ok("POST", "/file/move", json={"uris": [uri("/ver/b.bin")], "dst": uri("/"), "copy": True})
    shared_url = api.url("/ver/b.bin")
    api.put("/ver/b.bin", b"version two")
    assert httpx.get(shared_url).content == b"version one"
    assert api.download("/b.bin") == b"version one" and api.download("/ver/b.bin") == b"version two"
