"""Byte ranges of a blob as every dialect serves them (common/blobs.py): the
small answers read in one piece and the large ones streamed must carry the
same bytes and headers, over one kept-alive connection, whether the blob is
in the page cache or not."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from cloudfs.server.common.blobs import BlobResponse

from .helpers import Api
from .koohelpers import KooApi
from .v3helpers import Api3

#: answers up to 1 MiB are read in one piece (blobs.WHOLE_LIMIT), larger ones streamed
WHOLE_LIMIT = 1 << 20
SIZE = 3 * WHOLE_LIMIT + 12345
DATA = os.urandom(SIZE)
#: (Range header, first byte, last byte): both sides of the one-piece limit, the ends of the file
RANGES = [
    ("bytes=0-0", 0, 0),
    (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
    (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),
    ("bytes=-1", SIZE - 1, SIZE - 1),
    ("bytes=-4096", SIZE - 4096, SIZE - 1),
    ("bytes=4096-8191", 4096, 8191),
    (f"bytes=100-{100 + WHOLE_LIMIT - 1}", 100, 100 + WHOLE_LIMIT - 1),
    (f"bytes=100-{100 + WHOLE_LIMIT}", 100, 100 + WHOLE_LIMIT),
    (f"bytes={SIZE - 5000}-{SIZE + 5000}", SIZE - 5000, SIZE - 1),
]


@pytest.fixture(scope="module", params=["v4", "v3", "koodrive"])
def blob_url(request, tmp_path_factory):
    """(dialect, a signed URL of DATA)."""
    dialect = request.param
    if dialect == "v4":
        srv = request.getfixturevalue("server")
        with Api(srv) as api:
            api.upload("/blob-answers.bin", DATA)
            yield dialect, api.url("/blob-answers.bin")
    elif dialect == "v3":
        srv = request.getfixturevalue("v3_server")
        with Api3(srv) as api3:
            api3.upload("/blob-answers.bin", DATA)
            yield dialect, srv.url + api3.url("/blob-answers.bin")
    else:
        srv = request.getfixturevalue("kd_server")
        with KooApi(srv) as kapi:
            yield dialect, kapi.url(kapi.upload("blob-answers.bin", DATA))


@pytest.mark.parametrize("header,first,last", RANGES)
def test_ranges(blob_url, header, first, last):
    _, url = blob_url
    resp = httpx.get(url, headers={"Range": header})
    assert resp.status_code == 206, resp.text
    assert resp.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert resp.headers["content-length"] == str(last - first + 1)
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.content == DATA[first:last + 1]


def test_whole_file_and_head(blob_url):
    dialect, url = blob_url
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["content-length"] == str(SIZE)
    head = httpx.head(url, headers={"Range": "bytes=10-19"})
    if dialect == "v3":  # Cloudreve 3 routes GET only, and gin answers anything else 404
        assert head.status_code == 404
        return
    if dialect == "koodrive":  # a presigned URL's signature covers its method: this one is GET's
        assert head.status_code == 403
        return
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-length"] == "10" and head.headers["content-range"] == f"bytes 10-19/{SIZE}"


def test_range_past_the_end_is_416(blob_url):
    dialect, url = blob_url
    resp = httpx.get(url, headers={"Range": f"bytes={SIZE}-"})
    assert resp.status_code == 416
    if dialect != "koodrive":  # Go's ServeContent names the size; the object store answers its own way
        assert resp.headers["content-range"] == f"bytes */{SIZE}"


def test_many_ranges_over_one_connection(blob_url):
    """The mount's downloader keeps its connection: every answer, small or
    streamed, ends cleanly and leaves the connection open for the next."""
    _, url = blob_url
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        sock = None
        for i, (header, first, last) in enumerate(RANGES * 3):
            conn.request("GET", f"{parts.path}?{parts.query}", headers={"Range": header})
            resp = conn.getresponse()
            assert resp.status == 206 and resp.read() == DATA[first:last + 1]
            assert not resp.will_close
            if i == 0:
                sock = conn.sock
            assert conn.sock is sock  # the same socket: nobody closed the connection
    finally:
        conn.close()


def test_a_short_answer_ends_unfinished(tmp_path):
    """A blob shorter than its answer's Content-Length: what there is, then the
    end, so the HTTP layer sees the short body (and closes the connection), as
    when streaming."""
    blob = tmp_path / "blob"
    blob.write_bytes(DATA[:1000])
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        await trio.sleep_forever()  # no disconnect

    answer = BlobResponse(str(blob), [(b"", 900, 200)], b"", 0, 206, {"Content-Length": "200"})
    trio.run(answer, {"type": "http"}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert sent[1] == {"type": "http.response.body", "body": DATA[900:1000], "more_body": True}
    assert sent[2] == {"type": "http.response.body", "body": b"", "more_body": False}
