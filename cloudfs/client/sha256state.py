"""SHA-256 with its intermediate states: the chaining value after every
``step`` bytes, as well as the digest.

A backend that takes parts of one upload in parallel while hashing the file
as a stream needs, with each part, the SHA-256 state after the bytes before
it (8 x 32-bit words).  hashlib cannot show that state, so the running hash
is OpenSSL's own ``SHA256_CTX`` (libcrypto, the library hashlib itself uses
for SHA-256) driven through ctypes: same speed, and its ``h`` words are the
state whenever the length hashed is a multiple of the 64-byte block.  ctypes
releases the GIL during each call, so hashing in a worker thread runs beside
the event loop.  Without libcrypto, :data:`STATES_AVAILABLE` is False and
hashlib gives the digest alone (no states: uploads stay sequential).

:class:`Sha256Run` hashes bytes as they come (a file written front to back,
or read back), recording the state at every multiple of ``step``;
:class:`HashStates` is its frozen result, handed to the upload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from dataclasses import dataclass

#: states are recorded every this many bytes (a multiple of the 64-byte block):
#: part sizes of a parallel upload are multiples of it
STEP = 8 << 20
#: bytes read from the file per piece when hashing it back
READ_PIECE = 4 << 20


class _Ctx(ctypes.Structure):
    """OpenSSL's SHA256_CTX (sha.h): the chaining words, the bit count, the
    partial block and its fill."""

    _fields_ = [("h", ctypes.c_uint32 * 8), ("Nl", ctypes.c_uint32), ("Nh", ctypes.c_uint32),
                ("data", ctypes.c_uint32 * 16), ("num", ctypes.c_uint), ("md_len", ctypes.c_uint)]


def _libcrypto() -> ctypes.CDLL | None:
    found = ctypes.util.find_library("crypto")
    if not found:
        return None
    try:
        lib = ctypes.CDLL(found)
        init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
    except (OSError, AttributeError):
        return None
    init.argtypes = [ctypes.POINTER(_Ctx)]
    update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_char_p, ctypes.c_size_t]
    final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Ctx)]
    init.restype = update.restype = final.restype = ctypes.c_int
    return lib


_LIB = _libcrypto()
STATES_AVAILABLE = _LIB is not None


@dataclass(frozen=True, slots=True)
class HashStates:
    """The SHA-256 of ``size`` bytes and, if known, the state after every
    multiple of ``step`` bytes up to ``size`` (``states[k]``: after
    ``k * step`` bytes; ``states[0]`` is the initial state)."""

    size: int
    hexdigest: str
    step: int = STEP
    states: tuple[str, ...] = ()

    def state_at(self, offset: int) -> str | None:
        """The state (64 hex characters: 8 big-endian words) after ``offset``
        bytes, or None if it was not recorded."""
        k, rest = divmod(offset, self.step)
        return self.states[k] if not rest and k < len(self.states) else None


class Sha256Run:
    """A running SHA-256 that records its state every ``step`` bytes."""

    def __init__(self, step: int = STEP) -> None:
        if step <= 0 or step % 64:
            raise ValueError("the state step must be a positive multiple of 64")
        self.step = step
        self.length = 0
        self._states: list[str] = []
        if _LIB is None:
            self._fallback: "hashlib._Hash | None" = hashlib.sha256()
        else:
            self._fallback = None
            self._ctx = _Ctx()
            _LIB.SHA256_Init(ctypes.byref(self._ctx))
            self._states.append(self._state())

    def _state(self) -> str:
        return "".join(f"{word:08x}" for word in self._ctx.h)

    def update(self, data: bytes) -> None:
        if self._fallback is not None:
            self._fallback.update(data)
            self.length += len(data)
            return
        assert _LIB is not None
        view = memoryview(data)
        while view:
            # never across a multiple of step, so the state there can be read
            room = self.step - self.length % self.step
            piece = view[:room]
            raw = data if len(piece) == len(data) and isinstance(data, bytes) else bytes(piece)
            _LIB.SHA256_Update(ctypes.byref(self._ctx), raw, len(raw))
            self.length += len(raw)
            view = view[len(raw):]
            if self.length % self.step == 0:
                self._states.append(self._state())

    def result(self) -> HashStates:
        """The digest so far (the run may go on) and the states recorded."""
        if self._fallback is not None:
            return HashStates(self.length, self._fallback.copy().hexdigest(), self.step)
        assert _LIB is not None
        ctx = _Ctx.from_buffer_copy(self._ctx)  # Final on a copy: the run may go on
        out = ctypes.create_string_buffer(32)
        _LIB.SHA256_Final(out, ctypes.byref(ctx))
        return HashStates(self.length, out.raw.hex(), self.step, tuple(self._states))


def hash_file(fd: int, size: int, step: int = STEP) -> HashStates:
    """The :class:`HashStates` of the first ``size`` bytes of an open file
    (blocking: run it in a worker thread)."""
    run = Sha256Run(step)
    while run.length < size:
        piece = os.pread(fd, min(READ_PIECE, size - run.length), run.length)
        if not piece:
            raise OSError(5, "the file shrank while being hashed")
        run.update(piece)
    return run.result()
