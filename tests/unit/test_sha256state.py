"""The SHA-256 run with its intermediate states (hashCtx of parallel parts):
each recorded state, continued by an independent SHA-256 compression, must
give hashlib's digest of the whole."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest

from cloudfs.client import sha256state
from cloudfs.client.sha256state import HashStates, Sha256Run, hash_file

from tests.unit.test_koodrive_sha256ctx import _compress  # FIPS 180-4's compression, written from scratch



def finish_from(state_hex: str, rest: bytes, total: int) -> str:
    """The digest of a message whose first ``total - len(rest)`` bytes left
    the state ``state_hex`` (8 big-endian words), followed by ``rest``."""
    h = list(struct.unpack(">8I", bytes.fromhex(state_hex)))
    tail = rest + b"\x80" + b"\0" * ((55 - total) % 64) + struct.pack(">Q", total * 8)
    for i in range(0, len(tail), 64):
        h = _compress(h, tail[i:i + 64])
    return struct.pack(">8I", *h).hex()


needs_states = pytest.mark.skipif(not sha256state.STATES_AVAILABLE, reason="no libcrypto: no states")


@needs_states
def test_states_continue_to_the_digest():
    data = os.urandom(5 * 256 + 100)
    run = Sha256Run(step=256)
    pos = 0
    for n in (1, 63, 64, 255, 300, 7, 500, 10_000):  # pieces across the step boundaries
        run.update(data[pos:pos + n])
        pos += n
    got = run.result()
    assert got.size == len(data) and got.hexdigest == hashlib.sha256(data).hexdigest()
    assert len(got.states) == 6  # after 0, 256, ..., 1280 bytes
    assert got.states[0] == "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19"
    for k, state in enumerate(got.states):
        assert got.state_at(k * 256) == state
        assert finish_from(state, data[k * 256:], len(data)) == got.hexdigest
    assert got.state_at(100) is None and got.state_at(6 * 256) is None


@needs_states
def test_the_run_goes_on_after_a_result():
    run = Sha256Run(step=64)
    run.update(b"a" * 100)
    first = run.result()
    run.update(b"b" * 100)
    assert first.hexdigest == hashlib.sha256(b"a" * 100).hexdigest()
    assert run.result().hexdigest == hashlib.sha256(b"a" * 100 + b"b" * 100).hexdigest()
    assert run.result().states[:2] == first.states


def test_hash_file(tmp_path):
    data = os.urandom(3 * 4096 + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = hash_file(fd, len(data), step=4096)
        with pytest.raises(OSError):
            hash_file(fd, len(data) + 1)
    finally:
        os.close(fd)
    assert got.hexdigest == hashlib.sha256(data).hexdigest()
    if sha256state.STATES_AVAILABLE:
        assert finish_from(got.state_at(8192), data[8192:], len(data)) == got.hexdigest


def test_without_libcrypto_the_digest_alone(monkeypatch):
    monkeypatch.setattr(sha256state, "_LIB", None)
    run = Sha256Run(step=64)
    run.update(b"x" * 1000)
    assert run.result() == HashStates(1000, hashlib.sha256(b"x" * 1000).hexdigest(), 64, ())


def test_step_must_be_whole_blocks():
    with pytest.raises(ValueError):
        Sha256Run(step=100)
