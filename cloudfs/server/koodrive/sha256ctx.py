"""SHA-256 of a blob with the intermediate states at chosen offsets (``hashCtx``).

A parallel KooDrive upload gives each part after the first a ``hashCtx``: the
SHA-256 state (8 x 32-bit words) after the bytes before it.  hashlib does not
expose that state, so it is read from OpenSSL's ``SHA256_CTX`` through ctypes
(libcrypto, which Python's own hashlib uses).  The offsets are multiples of 64
(a SHA-256 block), where the state is exactly the chaining value.  Without
libcrypto, :data:`AVAILABLE` is False and only the digest is computed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib

READ = 8 << 20


class _Ctx(ctypes.Structure):
    _fields_ = [("h", ctypes.c_uint32 * 8), ("Nl", ctypes.c_uint32), ("Nh", ctypes.c_uint32),
                ("data", ctypes.c_uint32 * 16), ("num", ctypes.c_uint), ("md_len", ctypes.c_uint)]


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final  # noqa: B018 - present?
    except (OSError, AttributeError):
        return None
    lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return lib


_LIB = _load()
AVAILABLE = _LIB is not None


def state_hex(words: "ctypes.Array[ctypes.c_uint32]") -> str:
    """The 8 words as 64 hex characters, big-endian words in order (the assumed hashCtx form)."""
    return "".join(f"{w:08x}" for w in words)


def digest_with_states(path: str, offsets: list[int]) -> tuple[str, dict[int, str]]:
    """(hex digest of the file, {offset: state hex}) for every offset (multiples of 64)."""
    if _LIB is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(READ):
                digest.update(chunk)
        return digest.hexdigest(), {}
    ctx = _Ctx()
    _LIB.SHA256_Init(ctypes.byref(ctx))
    states: dict[int, str] = {}
    wanted = sorted(set(offsets))
    pos = 0
    with open(path, "rb") as fh:
        for target in [*wanted, None]:
            while target is None or pos < target:
                size = READ if target is None else min(READ, target - pos)
                chunk = fh.read(size)
                if not chunk:
                    break
                _LIB.SHA256_Update(ctypes.byref(ctx), chunk, len(chunk))
                pos += len(chunk)
            if target is not None and pos == target:
                states[target] = state_hex(ctx.h)
    out = ctypes.create_string_buffer(32)
    _LIB.SHA256_Final(out, ctypes.byref(ctx))
    return out.raw.hex(), states
