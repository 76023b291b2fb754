"""Opaque object ids: hashids of ``[id, type]`` with a per-data-dir salt.

Cloudreve (``pkg/hashid``) encodes every exposed id as a hashid of the pair
``[numeric id, id type]`` and refuses a decoded value whose type does not
match.  We use the same scheme and the same type numbers, with a random salt
stored in the data directory, so ids are stable across restarts but differ
between servers.
"""

from __future__ import annotations

from hashids import Hashids

SHARE, USER, FILE, FOLDER, TAG, POLICY, SOURCE_LINK, GROUP, ENTITY = range(9)


class IdCodec:
    def __init__(self, salt: str) -> None:
        self._h = Hashids(salt=salt)

    def encode(self, value: int, kind: int) -> str:
        return self._h.encode(value, kind)

    def decode(self, raw: str, kind: int) -> int | None:
        """The numeric id, or None when ``raw`` is not a hashid of this kind."""
        if not isinstance(raw, str) or not raw:
            return None
        try:
            values = self._h.decode(raw)
        except Exception:  # malformed input: hashids may raise on odd alphabets
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
