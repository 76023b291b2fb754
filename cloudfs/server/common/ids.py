"""Opaque object ids: hashids of ``[id, type]`` with a per-data-dir salt.

Cloudreve (``pkg/hashid``) encodes every exposed id as a hashid of the pair
``[numeric id, id type]`` and refuses a decoded value whose type does not
match.  We use the same scheme and the same type numbers, with a random salt
stored in the data directory, so ids are stable across restarts but differ
between servers.
"""

from __future__ import annotations

import hashids
from hashids import Hashids

SHARE, USER, FILE, FOLDER, TAG, POLICY, SOURCE_LINK, GROUP, ENTITY = range(9)

#: decoded ids remembered (a download URL's entity id is decoded on every ranged GET)
DECODE_MEMO = 4096


class IdCodec:
    def __init__(self, salt: str) -> None:
        self._h = Hashids(salt=salt)
        self._salt = salt
        self._alphabet: str = self._h._alphabet
        self._separators: str = self._h._separators
        self._shuffles: dict[tuple[str, str], str] = {}
        self._zero: dict[int, str] = {}
        self._decoded: dict[tuple[str, int], int | None] = {}

    def _reorder(self, alphabet: str, salt: str) -> str:
        # the per-number alphabet shuffle depends only on (lottery char, alphabet):
        # a handful of distinct inputs, so caching makes encoding ~50x faster
        key = (alphabet, salt)
        shuffled = self._shuffles.get(key)
        if shuffled is None:
            shuffled = self._shuffles[key] = hashids._reorder(alphabet, salt)
        return shuffled

    def encode(self, value: int, kind: int) -> str:
        if value == 0:
            # "entity 0" (folders, empty files) is rendered constantly
            cached = self._zero.get(kind)
            if cached is None:
                cached = self._zero[kind] = self._encode(0, kind)
            return cached
        return self._encode(value, kind)

    def _encode(self, value: int, kind: int) -> str:
        """Same output as ``Hashids(salt).encode(value, kind)`` (min length 0)."""
        alphabet = self._alphabet
        size = len(alphabet)
        lottery = alphabet[(value % 100 + kind % 101) % size]
        encoded = lottery
        for i, number in enumerate((value, kind)):
            alphabet = self._reorder(alphabet, (lottery + self._salt + alphabet)[:size])
            last = hashids._hash(number, alphabet)
            encoded += last
            encoded += self._separators[(number % (ord(last[0]) + i)) % len(self._separators)]
        return encoded[:-1]

    def decode(self, raw: str, kind: int) -> int | None:
        """The numeric id, or None when ``raw`` is not a hashid of this kind."""
        if not isinstance(raw, str) or not raw:
            return None
        key = (raw, kind)
        try:
            return self._decoded[key]
        except KeyError:
            pass
        value = self._decode(raw, kind)
        if len(self._decoded) >= DECODE_MEMO:  # bounded: forget everything, then refill
            self._decoded.clear()
        self._decoded[key] = value
        return value

    def _decode(self, raw: str, kind: int) -> int | None:
        # hashids decoding is pure Python and slow (about 60 µs for an entity id)
        try:
            values = self._h.decode(raw)
        except (ValueError, TypeError, IndexError):  # malformed input
            return None
        if len(values) != 2 or values[1] != kind:
            return None
        # go-hashids re-encodes to reject non-canonical spellings
        if self._h.encode(*values) != raw:
            return None
        return values[0]

    def file(self, value: int) -> str:
        return self.encode(value, FILE)

    def entity(self, value: int) -> str:
        return self.encode(value, ENTITY)

    def user(self, value: int) -> str:
        return self.encode(value, USER)
