"""The upload engine's ordering and failure rules (cloudfs.client.upload),
driven through a recording stand-in for the dialect: no HTTP, only the
engine's own decisions (the same flows run against the real server in
tests/client/test_transfer.py and test_faults.py)."""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass, field

import pytest
import trio

from cloudfs.client.dialect import UploadSession
from cloudfs.client.models import Capabilities, Entry, ServerInfo
from cloudfs.client.sha256state import HashStates
from cloudfs.client.settings import ClientSettings
from cloudfs.client.upload import Uploader
from cloudfs.errors import ServerError, UnsupportedStoragePolicy
from cloudfs.client.cloudreve_codes import CloudreveError


@dataclass
class Recorder:
    chunk_size: int = 10
    concurrency: int = 3
    policy_type: str = "local"
    fail_index: int | None = None
    expire_once_at: int | None = None
    sent: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    started_last_with_others_done: bool | None = None
    #: chunks in flight when the last one started
    in_flight_at_last: int = 0
    opened: int = 0
    cancelled: list[str] = field(default_factory=list)
    bodies: dict[int, bytes] = field(default_factory=dict)
    completed: int = 0

    #: default capabilities: relayed chunks, no whole-file hash asked for
    info: ServerInfo = field(default_factory=lambda: ServerInfo(dialect="recorder", version="0"))

    #: what put_whole answers: None as a dialect without one-request uploads
    whole: Entry | None = None
    whole_calls: list[tuple[str, bytes, dict]] = field(default_factory=list)

    async def put_whole(self, path, content, *, replace, mtime_ns, metadata):
        self.whole_calls.append((path, content, dict(metadata)))
        return self.whole

    #: the whole-file hashes each open_upload was given
    hashes: list[tuple[str | None, object]] = field(default_factory=list)

    async def open_upload(self, path, size, *, mtime_ms, replace, tag=None, metadata=None, sha256=None,
                          hash_states=None):
        self.opened += 1
        self.hashes.append((sha256, hash_states))
        return UploadSession(session_id=f"s{self.opened}", path=path, size=size, chunk_size=self.chunk_size,
                             concurrency=self.concurrency, expires_at=0, policy_type=self.policy_type)

    async def send_chunk(self, session, index, length, body, *, deadline):
        last = (session.size - 1) // session.chunk_size if session.size else 0
        if index == last:
            self.started_last_with_others_done = self.in_flight == 0 and set(range(last)) <= set(self.sent)
            self.in_flight_at_last = self.in_flight
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(0.01 * (index % 3))  # out-of-order completion
            if self.expire_once_at == index:
                self.expire_once_at = None
                raise CloudreveError(40011, "upload session expired")
            if self.fail_index == index:
                raise ServerError("boom", status=500)
            data = body if isinstance(body, bytes) else b"".join([p async for p in body()])
            assert len(data) == length
            self.bodies[index] = data
            self.sent.append(index)
        finally:
            self.in_flight -= 1

    async def cancel_upload(self, session):
        self.cancelled.append(session.session_id)

    async def complete_upload(self, session, replace):
        # as v4: the completing chunk made the version current; the engine only reads it back
        self.completed += 1
        return Entry(file_id="f", path=session.path, is_dir=False, size=session.size, mtime_ns=0, ctime_ns=0,
                     version="v2", uploading=False)


def uploader(rec, parallel=4):
    async def stat(path):
        done = 9 in rec.sent  # the completing chunk arrived
        return Entry(file_id="f", path=path, is_dir=False, size=95 if done else 0, mtime_ns=0, ctime_ns=0,
                     version="v2" if done else "", uploading=not done)

    return Uploader(rec, ClientSettings(upload_parallelism=parallel, upload_read_size=4 << 10), stat)


@pytest.fixture
def source(tmp_path):
    p = tmp_path / "src"
    p.write_bytes(bytes(range(95)))
    return p


async def test_last_chunk_alone_after_all_others(source):
    rec = Recorder()
    seen = []
    got = await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=seen.append)
    assert got.path == "/a"
    assert sorted(rec.sent) == list(range(10)) and rec.sent[-1] == 9
    assert rec.started_last_with_others_done is True
    assert 1 < rec.max_in_flight <= 3  # the policy's 3, under the client's 4
    assert b"".join(rec.bodies[i] for i in range(10)) == bytes(range(95))
    assert sum(seen) == 95 and not rec.cancelled


async def test_client_cap_limits_concurrency(source):
    rec = Recorder(concurrency=10)
    await uploader(rec, parallel=2).upload("/a", source, mtime_ns=None, replace=None, progress=None)
    assert rec.max_in_flight == 2


async def test_failure_cancels_session(source):
    rec = Recorder(fail_index=4)
    with pytest.raises(ServerError):
        await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None)
    assert rec.cancelled == ["s1"] and 9 not in rec.sent  # the completing chunk never went


async def test_direct_to_cloud_policy_refused(source):
    rec = Recorder(policy_type="s3")
    with pytest.raises(UnsupportedStoragePolicy) as info:
        await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None)
    assert info.value.errno == errno.EOPNOTSUPP
    assert rec.cancelled == ["s1"] and rec.sent == []


async def test_expired_session_restarts_once(source):
    rec = Recorder(expire_once_at=5)
    seen = []
    await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=seen.append)
    assert rec.opened == 2 and rec.cancelled == ["s1"]
    assert sum(seen) == 95  # chunks sent twice are reported once


async def test_cancellation_cancels_session(source):
    rec = Recorder()
    with trio.move_on_after(0.005):
        await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None)
    assert rec.cancelled == ["s1"]


async def test_zero_byte_file_is_one_empty_chunk(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    rec = Recorder()
    await uploader(rec).upload("/e", p, mtime_ns=None, replace=None, progress=None)
    assert rec.sent == [0] and rec.bodies[0] == b""


def _entry(path: str, size: int, version: str = "v1") -> Entry:
    return Entry(file_id="f", path=path, is_dir=False, size=size, mtime_ns=0, ctime_ns=0, version=version,
                 uploading=False)


async def test_a_small_replacement_goes_up_in_one_request_where_the_dialect_has_one(tmp_path):
    source = tmp_path / "small"
    source.write_bytes(b"x" * 95)
    rec = Recorder(whole=_entry("/f", 95, "v2"))
    done: list[int] = []
    entry = await uploader(rec).upload("/f", source, mtime_ns=None, replace=_entry("/f", 0), progress=done.append,
                                       tag="t1", metadata={"k": "v"})
    assert entry.version == "v2"
    assert rec.whole_calls == [("/f", b"x" * 95, {"k": "v", "dav:cloudfs:upload": "t1"})]
    assert rec.opened == 0 and rec.sent == []  # no session
    assert done == [95]


async def test_new_files_large_files_and_dialects_without_it_use_a_session(tmp_path):
    source = tmp_path / "small"
    source.write_bytes(b"x" * 95)
    # a small new file goes in one request too (the dialect's put_whole then only creates)...
    rec = Recorder(whole=_entry("/f", 95, "v2"))
    await uploader(rec).upload("/f", source, mtime_ns=None, replace=None, progress=None)
    assert len(rec.whole_calls) == 1 and rec.opened == 0
    # ...up to whole_create_max
    rec = Recorder(whole=_entry("/f", 95, "v2"))
    up = Uploader(rec, ClientSettings(whole_create_max=50), uploader(rec)._stat)
    await up.upload("/f", source, mtime_ns=None, replace=None, progress=None)
    assert rec.whole_calls == [] and rec.opened == 1
    # larger than whole_upload_max
    rec = Recorder(whole=_entry("/f", 95, "v2"))
    up = Uploader(rec, ClientSettings(whole_upload_max=50), uploader(rec)._stat)
    await up.upload("/f", source, mtime_ns=None, replace=_entry("/f", 0), progress=None)
    assert rec.whole_calls == [] and rec.opened == 1
    # the dialect has no such request (None): a session after all
    rec = Recorder(whole=None)
    await uploader(rec).upload("/f", source, mtime_ns=None, replace=_entry("/f", 0), progress=None)
    assert len(rec.whole_calls) == 1 and rec.opened == 1 and sorted(rec.sent) == list(range(10))


def hashing_recorder(**caps) -> Recorder:
    """A dialect that wants the whole file's SHA-256 up front and completes with a call of its own."""
    return Recorder(info=ServerInfo(dialect="recorder", version="0",
                                    capabilities=Capabilities(whole_file_hash=True, **caps)))


async def test_the_last_part_goes_with_the_others_where_a_call_completes(source):
    rec = hashing_recorder(last_chunk_alone=False)
    rec.chunk_size = 40  # three chunks: 40, 40, 15
    await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None)
    assert sorted(rec.sent) == [0, 1, 2] and rec.in_flight_at_last == 2  # sent beside the first two
    assert b"".join(rec.bodies[i] for i in range(3)) == bytes(range(95))


async def test_the_callers_hash_is_used_when_its_size_fits(source):
    digest = hashlib.sha256(bytes(range(95))).hexdigest()
    given = HashStates(95, "ab" * 32, 64, ("cd" * 32,))
    rec = hashing_recorder()
    await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None, hashed=given)
    assert rec.hashes == [("ab" * 32, given)]  # not read back
    stale = HashStates(94, "ab" * 32)
    await uploader(rec).upload("/a", source, mtime_ns=None, replace=None, progress=None, hashed=stale)
    sha256, states = rec.hashes[-1]
    assert sha256 == digest and states.size == 95 and states.hexdigest == digest  # read back: the size differs
