"""Live changes: another client changes the drive, the mount sees it well before any TTL.

The server runs with a 0.3 s debounce; the mount keeps metadata 600 s while
its change feed is live (the default ``events_ttl``), and the kernel is told
the same, so only the feed's invalidations can make these changes show in
seconds.  The fallback tests check that without a feed (Cloudreve 3, the
feed switched off, a server before 4.11, ``events=off``) the mount goes back
to the plain ``metadata_ttl``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer, start_server
from tests.mount.conftest import TEST_OPTIONS, Drive, Remote, mounted, run_cloudfs, wait_until
from tests.server.helpers import Api, uri

DEBOUNCE = 0.3
#: a change must show well within this (the TTLs are 600 s; the kernel's too)
SEEN_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("changes"), faults=True,
                       extra_args=["--events-debounce", str(DEBOUNCE)])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def drive(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    with mounted(server, tmp_path_factory.mktemp("drive")) as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        yield d


@pytest.fixture
def other(server: RunningServer) -> Iterator[Api]:
    """Another client (its own client id), talking HTTP as the web UI does."""
    with Api(server) as api:
        yield api


def status(d: Drive) -> dict:
    out = run_cloudfs("status", str(d.path), "--json", check=True)
    return json.loads(out.stdout)[0]


def fresh_folder(drive: Drive, other: Api, name: str) -> Path:
    """A folder the mount has listed (so its listing is cached, for 600 s)."""
    other.mkdir("/" + name)
    folder = drive / name
    wait_until(lambda: folder.is_dir(), timeout=SEEN_WITHIN_S)
    assert os.listdir(folder) == []
    return folder


def test_status_shows_the_live_mode(drive: Drive):
    changes = status(drive)["changes"]
    assert changes["mode"] == "events" and changes["metadata_ttl_s"] == 600
    assert "changes by others: events, metadata TTL 600 s" in run_cloudfs("status", str(drive.path)).stdout


def test_create_shows_in_a_cached_listing(drive: Drive, other: Api):
    folder = fresh_folder(drive, other, "create")
    other.put("/create/new.txt", b"hello")
    other.mkdir("/create/sub")
    wait_until(lambda: sorted(os.listdir(folder)) == ["new.txt", "sub"], timeout=SEEN_WITHIN_S)
    assert (folder / "new.txt").read_bytes() == b"hello"



def test_a_name_seen_missing_shows_once_another_client_creates_it(
        server: RunningServer, other: Api, tmp_path: Path):
    """The kernel keeps a name found missing (rsync, tar and builds look up
    every name they make); a create event makes it forget it: here it would
    keep it for 600 s."""
    with mounted(server, tmp_path, options=TEST_OPTIONS + ",negative_ttl=600") as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        folder = fresh_folder(d, other, "seen-missing")
        assert not (folder / "late.txt").exists() and not (folder / "late-dir").exists()
        assert not (folder / "moved-in.txt").exists()
        other.put("/seen-missing/late.txt", b"late")
        other.mkdir("/seen-missing/late-dir")
        other.put("/seen-missing/first.txt", b"moved")
        other.ok("POST", "/file/rename", json={"uri": uri("/seen-missing/first.txt"), "new_name": "moved-in.txt"})
        wait_until(lambda: (folder / "late.txt").exists() and (folder / "late-dir").is_dir()
                   and (folder / "moved-in.txt").exists(), timeout=SEEN_WITHIN_S)
        assert (folder / "late.txt").read_bytes() == b"late"
        assert (folder / "moved-in.txt").read_bytes() == b"moved"


@pytest.mark.parametrize("how", ["create", "rename"])
def test_a_name_looked_up_while_its_create_is_applied_shows(server: RunningServer, other: Api, tmp_path: Path,
                                                            how: str):
    """The kernel was told to forget a missing name before the mount's caches
    knew the new entry (its stat still on the way): a lookup in between was
    answered from the cached listing, without the name, and the kernel kept
    it missing for negative_ttl.  The test above failed so under load; a
    slow stat makes the window wide here."""
    with mounted(server, tmp_path, options=TEST_OPTIONS + ",negative_ttl=600") as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        folder = fresh_folder(d, other, f"slow-{how}")
        if how == "rename":
            other.put(f"/slow-{how}/first.txt", b"late")
            wait_until(lambda: (folder / "first.txt").exists(), timeout=SEEN_WITHIN_S)
        assert not (folder / "late.txt").exists()
        server.faults.set(path_regex=r"/file/info$", latency_s=2.0)  # the mount's stat of the new entry
        try:
            if how == "rename":
                other.ok("POST", "/file/rename", json={"uri": uri(f"/slow-{how}/first.txt"), "new_name": "late.txt"})
            else:
                other.put(f"/slow-{how}/late.txt", b"late")
            # looked up again and again meanwhile, as rsync or a build does
            wait_until(lambda: (folder / "late.txt").exists(), timeout=SEEN_WITHIN_S)
        finally:
            server.faults.clear()
        assert (folder / "late.txt").read_bytes() == b"late"


def test_modify_reaches_stat_and_a_cached_file(drive: Drive, other: Api):
    folder = fresh_folder(drive, other, "modify")
    other.put("/modify/f.txt", b"old")
    wait_until(lambda: (folder / "f.txt").exists(), timeout=SEEN_WITHIN_S)
    assert (folder / "f.txt").read_bytes() == b"old"  # now in the kernel's page cache
    assert os.stat(folder / "f.txt").st_size == 3  # and its size in the kernel's attribute cache
    other.put("/modify/f.txt", b"new and longer", previous=other.info("/modify/f.txt")["data"]["primary_entity"])
    # a plain stat: the kernel was told, no timeout had to pass
    wait_until(lambda: os.stat(folder / "f.txt").st_size == 14, timeout=SEEN_WITHIN_S)
    assert (folder / "f.txt").read_bytes() == b"new and longer"


def test_rename_and_move(drive: Drive, other: Api):
    folder = fresh_folder(drive, other, "rename")
    other.put("/rename/a.txt", b"a")
    other.mkdir("/rename/dir")
    wait_until(lambda: sorted(os.listdir(folder)) == ["a.txt", "dir"], timeout=SEEN_WITHIN_S)
    assert os.listdir(folder / "dir") == []
    with open(folder / "a.txt", "rb") as held:  # an open file follows its object
        other.ok("POST", "/file/rename", json={"uri": uri("/rename/a.txt"), "new_name": "b.txt"})
        wait_until(lambda: sorted(os.listdir(folder)) == ["b.txt", "dir"], timeout=SEEN_WITHIN_S)
        assert not (folder / "a.txt").exists()
        assert os.stat(folder / "b.txt").st_ino == os.fstat(held.fileno()).st_ino
        assert held.read() == b"a"
    other.ok("POST", "/file/move", json={"uris": [uri("/rename/b.txt")], "dst": uri("/rename/dir")})
    wait_until(lambda: os.listdir(folder / "dir") == ["b.txt"], timeout=SEEN_WITHIN_S)
    assert os.listdir(folder) == ["dir"]
    assert (folder / "dir" / "b.txt").read_bytes() == b"a"


def test_delete(drive: Drive, other: Api):
    folder = fresh_folder(drive, other, "delete")
    other.put("/delete/gone.txt", b"x")
    other.mkdir("/delete/gone-dir/inner")
    wait_until(lambda: sorted(os.listdir(folder)) == ["gone-dir", "gone.txt"], timeout=SEEN_WITHIN_S)
    assert os.listdir(folder / "gone-dir") == ["inner"]
    other.delete("/delete/gone.txt", "/delete/gone-dir")
    wait_until(lambda: os.listdir(folder) == [], timeout=SEEN_WITHIN_S)
    assert not (folder / "gone.txt").exists() and not (folder / "gone-dir").exists()


def test_a_remount_resumes_under_the_same_client_id(server: RunningServer, other: Api, tmp_path: Path):
    with mounted(server, tmp_path) as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        assert status(d)["changes"]["resumed"] is False  # a new account cache: a new client id
        d.umount()
        other.mkdir("/while-unmounted")  # kept by the server for our client id
        d.mount()
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        assert status(d)["changes"]["resumed"] is True
        wait_until(lambda: status(d)["changes"]["applied"] >= 1, timeout=SEEN_WITHIN_S)  # the replay
        assert (d / "while-unmounted").is_dir()


def settled_count(d: Drive, quiet_s: float = DEBOUNCE * 4, timeout: float = 20.0) -> int:
    """The applied-change count once no change has come for ``quiet_s``: what earlier
    tests (and their other clients) did has all arrived."""
    last, since = status(d)["changes"]["applied"], time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = status(d)["changes"]["applied"]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
    raise AssertionError(f"changes still arriving after {timeout} s")


def test_own_changes_are_not_echoed_and_stay(drive: Drive, other: Api):
    seen = settled_count(drive)
    folder = fresh_folder(drive, other, "own")
    # The mount may find the new folder by a lookup before the other client's event for
    # it arrives (debounced): wait for that event, so that only our own changes are left.
    wait_until(lambda: status(drive)["changes"]["applied"] > seen, timeout=SEEN_WITHIN_S)
    (folder / "mine.txt").write_bytes(b"mine")
    os.sync()
    before = status(drive)["changes"]["applied"]
    time.sleep(DEBOUNCE * 6)
    assert status(drive)["changes"]["applied"] == before
    assert os.listdir(folder) == ["mine.txt"]


#: a process working in a folder: it asks getcwd() until its standard input closes, and says what it met
#: (-I: no lookup of its own folder's path at start-up, which would put a dropped name back)
GETCWD_WATCHER = """
import os, select, sys
first = os.getcwd()
while not select.select([sys.stdin], [], [], 0.005)[0]:
    try:
        os.getcwd()
    except OSError as exc:
        sys.exit(f"getcwd() failed: {exc}")
print(first)
"""


def test_a_recheck_keeps_the_folder_a_process_works_in(drive: Drive, other: Api):
    """A burst of changes that may have lost some (so too a reconnect)
    re-checks everything cached.  It dropped every folder's name in the
    kernel, which unhashes the folder: getcwd() of a process working in it
    failed with ENOENT until someone looked the name up again (git fsck's
    helpers failed so under load, exit 48).  Only the name of a folder the
    server no longer has is dropped."""
    folder = fresh_folder(drive, other, "recheck")
    (folder / "inside").mkdir()
    (folder / "stale").mkdir()
    assert sorted(os.listdir(folder)) == ["inside", "stale"]
    rechecks = status(drive)["changes"]["rechecks"]
    watcher = subprocess.Popen([sys.executable, "-I", "-c", GETCWD_WATCHER], cwd=folder / "inside",
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # more than the server's 16-event channel holds: the delete, last, is lost with the overflow
        for i in range(20):
            other.mkdir(f"/recheck/burst-{i}")
        other.delete("/recheck/stale", hard=True)
        wait_until(lambda: status(drive)["changes"]["rechecks"] > rechecks, timeout=SEEN_WITHIN_S)
        time.sleep(2)  # the kernel's names are dropped from a worker thread, moments later
    finally:
        out, err = watcher.communicate("", timeout=30)
    assert watcher.returncode == 0 and out.strip() == str(folder / "inside"), err
    wait_until(lambda: not (folder / "stale").exists(), timeout=SEEN_WITHIN_S)
    assert sorted(os.listdir(folder)) == sorted(["inside"] + [f"burst-{i}" for i in range(20)])


def test_remote_modify_of_a_file_with_local_changes_loses_nothing(
        server: RunningServer, other: Api, tmp_path: Path):
    # uploads held back long enough for the remote change to come first
    with mounted(server, tmp_path, options="upload_delay=30,delete=permanent") as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        other.mkdir("/conflict")
        other.put("/conflict/doc.txt", b"base")
        wait_until(lambda: (d / "conflict" / "doc.txt").exists(), timeout=SEEN_WITHIN_S)
        (d / "conflict" / "doc.txt").write_bytes(b"local edit")
        time.sleep(DEBOUNCE * 3)
        applied = status(d)["changes"]["applied"]
        other.put("/conflict/doc.txt", b"remote edit",
                  previous=other.info("/conflict/doc.txt")["data"]["primary_entity"])
        wait_until(lambda: status(d)["changes"]["applied"] > applied, timeout=SEEN_WITHIN_S)
        assert (d / "conflict" / "doc.txt").read_bytes() == b"local edit"
    # after the unmount's upload, both versions exist on the server
    contents = {f["name"]: other.download("/conflict/" + f["name"]) for f in other.ls("/conflict")["files"]}
    assert sorted(contents.values()) == [b"local edit", b"remote edit"]


def test_a_stream_cut_mid_frame_reconnects_and_rechecks(server: RunningServer, other: Api, tmp_path: Path):
    other.mkdir("/cut")
    subscribed = len(b"event:subscribed\ndata:<nil>\n\n")
    # the mount's first feed connection is cut 20 bytes into its first event frame
    server.faults.set(drop_rate=1.0, drop_after_bytes=subscribed + 20, drop_target="response",
                      path_regex="/file/events", count=1)
    with mounted(server, tmp_path) as d:
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
        assert os.listdir(d / "cut") == []  # cached for 600 s
        other.put("/cut/one.txt", b"1")  # its event frame is the one cut
        wait_until(lambda: server.faults.stats()["drop_response"] == 1, timeout=SEEN_WITHIN_S)
        # the event is lost with the stream; the reconnect re-checks everything cached instead
        wait_until(lambda: os.listdir(d / "cut") == ["one.txt"], timeout=SEEN_WITHIN_S)
        wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=SEEN_WITHIN_S)
        assert status(d)["changes"]["rechecks"] >= 2  # subscribed, then again after the cut
        other.put("/cut/two.txt", b"2")  # and the new stream delivers
        wait_until(lambda: sorted(os.listdir(d / "cut")) == ["one.txt", "two.txt"], timeout=SEEN_WITHIN_S)
    server.faults.clear()


def test_a_change_lost_in_a_server_restart_is_seen_after_the_reconnect(tmp_path: Path):
    # a long debounce: the change is still held by the server when it restarts, and lost
    with start_server(tmp_path / "srv", faults=False, extra_args=["--events-debounce", "30"]) as srv:
        with mounted(srv, tmp_path) as d, Api(srv) as other:
            wait_until(lambda: status(d)["changes"]["mode"] == "events", timeout=15)
            other.mkdir("/restart")
            wait_until(lambda: (d / "restart").is_dir(), timeout=SEEN_WITHIN_S)  # the root was not cached yet
            assert os.listdir(d / "restart") == []  # cached for 600 s
            other.put("/restart/meanwhile.txt", b"m")
            rechecks = status(d)["changes"]["rechecks"]
            srv.restart()
            # losing the stream, then the new subscription (the server kept nothing), each
            # re-check everything cached
            wait_until(lambda: status(d)["changes"]["rechecks"] >= rechecks + 2, timeout=30)
            assert status(d)["changes"]["mode"] == "events" and status(d)["changes"]["resumed"] is False
            assert os.listdir(d / "restart") == ["meanwhile.txt"]


# --- fallback: no feed, the plain TTL -------------------------------------------------------
def _ttl_fallback(srv: RunningServer, base: Path, options: str, mode_prefix: str) -> None:
    with mounted(srv, base, options=f"{TEST_OPTIONS},metadata_ttl=2,{options}".rstrip(",")) as d:
        wait_until(lambda: status(d)["changes"]["mode"].startswith(mode_prefix), timeout=15)
        assert status(d)["changes"]["metadata_ttl_s"] == 2
        Remote(srv).mkdir("/fallback")
        wait_until(lambda: (d / "fallback").is_dir(), timeout=10)
        assert os.listdir(d / "fallback") == []
        Remote(srv).put("/fallback/late.txt", b"x")
        wait_until(lambda: os.listdir(d / "fallback") == ["late.txt"], timeout=10)  # the TTL (2 s) did it


@pytest.mark.parametrize("switch,mode", [("disabled", "ttl (unavailable: the change feed is switched off"),
                                         ("absent", "ttl (unavailable: the server has no change feed")])
def test_fallback_when_the_server_has_no_feed(tmp_path: Path, switch: str, mode: str):
    with start_server(tmp_path / "srv", faults=False, extra_args=["--events", switch]) as srv:
        _ttl_fallback(srv, tmp_path, "", mode)


def test_fallback_on_cloudreve_3(tmp_path: Path):
    with start_server(tmp_path / "srv", faults=False, dialect="v3") as srv:
        _ttl_fallback(srv, tmp_path, "", "ttl (no change feed on Cloudreve 3)")


def test_events_off(server: RunningServer, tmp_path: Path):
    _ttl_fallback(server, tmp_path, "events=off", "ttl (events=off)")
