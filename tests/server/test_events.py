"""Conformance of ``GET /api/v4/file/events`` (Cloudreve 4.11+ change feed).

Frames byte for byte as gin-contrib/sse writes them, the checks and their
errors in Cloudreve's order, debounce and merge, no echo to the client id
that made a change, resume of a client id within the max age, the drop of
events that do not fit a reader's channel of 16, and the two switches
(40019 disabled, 404 before 4.11).  The server runs with a short debounce
(0.3 s), keep-alive (1 s) and max age (2 s) so the tests are quick.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from cloudfs.server.testing import RunningServer, start_server

from .eventhelpers import Feed
from .helpers import Api, uri

DEBOUNCE = 0.3
FAST = ["--events-debounce", str(DEBOUNCE), "--events-keepalive", "1", "--events-max-age", "2"]


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("events"), faults=False, extra_args=FAST) as srv:
        yield srv


@pytest.fixture
def api(events_server: RunningServer) -> Iterator[Api]:
    with Api(events_server) as session:
        yield session


@pytest.fixture
def feed(events_server: RunningServer, api: Api) -> Iterator[Feed]:
    with Feed(events_server, api.token) as f:
        assert f.next() == ("subscribed", "<nil>")
        yield f


def unique(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


# --- frames -------------------------------------------------------------------------------
def test_frames_are_gins_bytes(events_server: RunningServer, api: Api, feed: Feed) -> None:
    assert feed.status == 200
    assert feed.headers["content-type"] == "text/event-stream;charset=utf-8"
    assert feed.headers["cache-control"] == "no-cache"
    assert feed.headers["x-accel-buffering"] == "no"
    folder = unique("a&b é")
    made = api.mkdir(folder)
    escaped = folder.replace("&", "\\u0026")
    frame = '{"type":"create","file_id":"%s","from":"%s","to":""}' % (made["id"], escaped)
    assert feed.next() == ("event", frame)
    assert feed.next(3, skip_keepalive=False) == ("keep-alive", "<nil>")
    raw = bytes(feed.raw)
    assert raw.startswith(b"event:subscribed\ndata:<nil>\n\nevent:event\ndata:{")
    assert ("event:event\ndata:" + frame + "\n\n").encode() in raw  # raw UTF-8, & escaped as Go does
    assert b"event:keep-alive\ndata:<nil>\n\n" in raw


# --- errors -------------------------------------------------------------------------------
def _get(srv: RunningServer, token: str | None, params: dict[str, str] | None,
         client_id: str | None) -> httpx.Response:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if client_id is not None:
        headers["X-Cr-Client-Id"] = client_id
    return httpx.get(srv.url + "/api/v4/file/events", params=params, headers=headers, timeout=10)


def test_errors_in_cloudreves_order(events_server: RunningServer, api: Api) -> None:
    good = str(uuid.uuid4())
    my = {"uri": "cloudreve://my"}

    def code(token: str | None, params: dict[str, str] | None, cid: str | None) -> tuple[int, str]:
        resp = _get(events_server, token, params, cid)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        return body["code"], body["msg"]

    assert code(None, my, good)[0] == 401
    assert code(api.token, None, good) == (40001, "Uri cannot be empty")
    assert code(api.token, {"uri": "http://x"}, good) == (40001, "Unknown uri")
    # a missing folder: the listing's own code, Cloudreve's message
    assert code(api.token, {"uri": uri("/no-such-folder")}, good) == (40016, "Requested uri not available")
    api.put(unique("plain") + ".txt", b"x")
    # the uri is checked before the client id
    assert code(api.token, {"uri": uri("/no-such-folder")}, None)[1] == "Requested uri not available"
    assert code(api.token, my, None) == (40001, "Client ID is required")
    assert code(api.token, my, "not-a-uuid") == (40001, "Invalid client ID")
    assert code(api.token, my, good[:-1] + "-") == (40001, "Invalid client ID")


@pytest.mark.parametrize("client_id", ["{%s}", "urn:uuid:%s", "%s"])
def test_client_id_forms_gofrs_accepts(events_server: RunningServer, api: Api, client_id: str) -> None:
    raw = str(uuid.uuid4())
    value = client_id % (raw.replace("-", "") if client_id == "%s" else raw)
    with Feed(events_server, api.token, value) as f:
        assert f.status == 200
        assert f.next() == ("subscribed", "<nil>")


def test_switches_disabled_and_absent(tmp_path_factory: pytest.TempPathFactory) -> None:
    with start_server(tmp_path_factory.mktemp("ev-off"), faults=False, extra_args=["--events", "disabled"]) as srv:
        with Api(srv) as api:
            assert _get(srv, None, {"uri": "cloudreve://my"}, str(uuid.uuid4())).json()["code"] == 401
            body = _get(srv, api.token, {"uri": "cloudreve://my"}, str(uuid.uuid4())).json()
            assert (body["code"], body["msg"]) == (40019, "This feature is not enabled")
    with start_server(tmp_path_factory.mktemp("ev-old"), faults=False, extra_args=["--events", "absent"]) as srv:
        with Api(srv) as api:
            resp = _get(srv, api.token, {"uri": "cloudreve://my"}, str(uuid.uuid4()))
            assert (resp.status_code, resp.text) == (404, "404 page not found")


# --- what is delivered ------------------------------------------------------------------------
def test_each_operation(events_server: RunningServer, api: Api, feed: Feed) -> None:
    base = unique("ops")
    folder = api.mkdir(base)
    assert feed.events(0.5) == [{"type": "create", "file_id": folder["id"], "from": base, "to": ""}]
    api.put(base + "/f.txt", b"one")
    created = feed.events(0.5)
    fid = api.info(base + "/f.txt")["data"]["id"]
    assert created == [{"type": "create", "file_id": fid, "from": base + "/f.txt", "to": ""}]
    api.put(base + "/f.txt", b"two!", previous=api.info(base + "/f.txt")["data"]["primary_entity"])
    assert feed.events(0.5) == [{"type": "modify", "file_id": fid, "from": base + "/f.txt", "to": ""}]
    api.ok("POST", "/file/rename", json={"uri": uri(base + "/f.txt"), "new_name": "g.txt"})
    assert feed.events(0.5) == [{"type": "rename", "file_id": fid, "from": base + "/f.txt",
                                 "to": base + "/g.txt"}]
    api.mkdir(base + "/sub")
    feed.events(0.5)
    api.ok("POST", "/file/move", json={"uris": [uri(base + "/g.txt")], "dst": uri(base + "/sub")})
    assert feed.events(0.5) == [{"type": "rename", "file_id": fid, "from": base + "/g.txt",
                                 "to": base + "/sub/g.txt"}]
    api.delete(base + "/sub/g.txt")
    assert feed.events(0.5) == [{"type": "delete", "file_id": fid, "from": base + "/sub/g.txt", "to": ""}]
    trashed = next(f["path"] for f in api.ls("/", fs="trash")["files"] if f["id"] == fid)
    api.ok("POST", "/file/restore", json={"uris": [trashed]})
    assert feed.events(0.5) == [{"type": "create", "file_id": fid, "from": base + "/sub/g.txt", "to": ""}]
    api.mkdir(base + "/other")
    feed.events(0.5)
    api.ok("POST", "/file/move", json={"uris": [uri(base + "/sub")], "dst": uri(base + "/other"), "copy": True})
    copy = api.info(base + "/other/sub")["data"]["id"]
    assert feed.events(0.5) == [{"type": "create", "file_id": copy, "from": base + "/other/sub", "to": ""}]


def test_subfolder_subscription_paths_and_moves_across_its_edge(events_server: RunningServer, api: Api) -> None:
    base = unique("scope")
    api.mkdir(base + "/inside")
    api.mkdir(base + "/outside")
    with Feed(events_server, api.token, uri=uri(base + "/inside")) as f:
        assert f.next() == ("subscribed", "<nil>")
        api.put(base + "/outside/x.txt", b"x")
        api.put(base + "/inside/deep/y.txt", b"y")  # mkdir -p below the subscribed folder
        got = f.events(0.6)
        assert [(e["type"], e["from"]) for e in got] == [("create", "/deep"), ("create", "/deep/y.txt")]
        api.ok("POST", "/file/move", json={"uris": [uri(base + "/outside/x.txt")], "dst": uri(base + "/inside")})
        assert [(e["type"], e["from"]) for e in f.events(0.6)] == [("create", "/x.txt")]
        api.ok("POST", "/file/move", json={"uris": [uri(base + "/inside/deep")], "dst": uri(base + "/outside")})
        assert [(e["type"], e["from"]) for e in f.events(0.6)] == [("delete", "/deep")]


def test_no_echo_to_the_same_client_id(events_server: RunningServer, api: Api, feed: Feed) -> None:
    base = unique("echo")
    api.ok("POST", "/file/create", json={"uri": uri(base), "type": "folder"},
           headers={"X-Cr-Client-Id": feed.client_id})
    api.ok("PUT", "/file/content", params={"uri": uri(base + "/mine.txt")}, content=b"m",
           headers={"X-Cr-Client-Id": feed.client_id})
    assert feed.events(0.3, first_timeout=DEBOUNCE * 4) == []
    api.ok("PUT", "/file/content", params={"uri": uri(base + "/theirs.txt")}, content=b"t",
           headers={"X-Cr-Client-Id": str(uuid.uuid4())})
    assert [e["from"] for e in feed.events(0.5)] == [base + "/theirs.txt"]


# --- debounce and merge ---------------------------------------------------------------------
def test_debounce_holds_events_until_quiet(events_server: RunningServer, api: Api, feed: Feed) -> None:
    base = unique("quiet")
    api.mkdir(base)
    started = time.monotonic()
    for i in range(4):  # each change restarts the timer
        api.put(f"{base}/f{i}.txt", b"x")
        time.sleep(DEBOUNCE / 2)
    got = feed.events(0.5)
    assert len(got) == 5
    assert time.monotonic() - started >= 4 * DEBOUNCE / 2 + DEBOUNCE


def test_merge_rules(events_server: RunningServer, api: Api, feed: Feed) -> None:
    base = unique("merge")
    api.mkdir(base)
    api.put(base + "/keep.txt", b"1")
    api.put(base + "/gone.txt", b"1")
    api.put(base + "/moved.txt", b"1")
    api.put(base + "/back.txt", b"1")
    feed.events(0.5)
    ids = {n: api.info(f"{base}/{n}")["data"]["id"] for n in ("keep.txt", "gone.txt", "moved.txt", "back.txt")}
    # within one debounce window:
    api.put(base + "/temp.txt", b"1")  # create + delete -> nothing
    api.delete(base + "/temp.txt")
    api.put(base + "/keep.txt", b"22", previous=api.info(base + "/keep.txt")["data"]["primary_entity"])
    api.put(base + "/keep.txt", b"333", previous=api.info(base + "/keep.txt")["data"]["primary_entity"])
    api.put(base + "/gone.txt", b"22", previous=api.info(base + "/gone.txt")["data"]["primary_entity"])
    api.delete(base + "/gone.txt", hard=True)  # modify + delete -> delete
    for old, new in (("moved.txt", "m2.txt"), ("m2.txt", "m3.txt")):  # rename chain -> one rename
        api.ok("POST", "/file/rename", json={"uri": uri(f"{base}/{old}"), "new_name": new})
    for old, new in (("back.txt", "b2.txt"), ("b2.txt", "back.txt")):  # there and back -> nothing
        api.ok("POST", "/file/rename", json={"uri": uri(f"{base}/{old}"), "new_name": new})
    api.put(base + "/born.txt", b"1")  # create + rename -> create at the new name
    api.ok("POST", "/file/rename", json={"uri": uri(base + "/born.txt"), "new_name": "named.txt"})
    got = feed.events(0.6)
    assert got == [
        {"type": "modify", "file_id": ids["keep.txt"], "from": base + "/keep.txt", "to": ""},
        {"type": "delete", "file_id": ids["gone.txt"], "from": base + "/gone.txt", "to": ""},
        {"type": "rename", "file_id": ids["moved.txt"], "from": base + "/moved.txt", "to": base + "/m3.txt"},
        {"type": "create", "file_id": api.info(base + "/named.txt")["data"]["id"],
         "from": base + "/named.txt", "to": ""},
    ]


def test_a_burst_beyond_the_channel_is_dropped(events_server: RunningServer, api: Api, feed: Feed) -> None:
    base = unique("burst")
    api.mkdir(base)
    feed.events(0.5)
    for i in range(24):  # more distinct files than the 16-slot channel in one window
        api.put(f"{base}/f{i:02}.txt", b"x")
    got = [e["from"] for e in feed.events(0.6)]
    # the 16 that fit, plus the one handed straight to the stream waiting for it (as a Go reader
    # blocked on the channel gets it); the rest are gone and nothing says so
    assert got == [f"{base}/f{i:02}.txt" for i in range(len(got))]
    assert 16 <= len(got) <= 17


# --- resume -----------------------------------------------------------------------------------
def test_reconnect_resumes_with_what_was_missed(events_server: RunningServer, api: Api) -> None:
    base = unique("resume")
    api.mkdir(base)
    client_id = str(uuid.uuid4())
    with Feed(events_server, api.token, client_id) as f:
        assert f.next() == ("subscribed", "<nil>")
        f.events(0.5)
    time.sleep(0.3)  # the server notices the disconnect
    api.put(base + "/while-away.txt", b"x")
    api.put(base + "/while-away.txt", b"xy", previous=api.info(base + "/while-away.txt")["data"]["primary_entity"])
    time.sleep(DEBOUNCE * 2)  # flushed into the offline store
    with Feed(events_server, api.token, str(uuid.uuid4())) as stranger:
        assert stranger.next() == ("subscribed", "<nil>")
        assert stranger.events(0.3, first_timeout=DEBOUNCE * 3) == []
    with Feed(events_server, api.token, client_id) as f:
        assert f.next() == ("resumed", "<nil>")
        assert [(e["type"], e["from"]) for e in f.events(0.5)] == [("create", base + "/while-away.txt")]


def test_a_client_id_offline_past_the_max_age_starts_over(events_server: RunningServer, api: Api) -> None:
    client_id = str(uuid.uuid4())
    with Feed(events_server, api.token, client_id) as f:
        assert f.next() == ("subscribed", "<nil>")
    api.mkdir(unique("expired"))
    time.sleep(2 * 2 + 0.5)  # max age 2 s, swept every 2 s
    with Feed(events_server, api.token, client_id) as f:
        assert f.next() == ("subscribed", "<nil>")
        assert f.events(0.3, first_timeout=DEBOUNCE * 3) == []


def test_a_restarted_server_has_forgotten_everyone(tmp_path_factory: pytest.TempPathFactory) -> None:
    with start_server(tmp_path_factory.mktemp("ev-restart"), faults=False, extra_args=FAST) as srv:
        client_id = str(uuid.uuid4())
        with Api(srv) as api:
            with Feed(srv, api.token, client_id) as f:
                assert f.next() == ("subscribed", "<nil>")
            srv.restart()
            api.login()
            with Feed(srv, api.token, client_id) as f:
                assert f.next() == ("subscribed", "<nil>")
