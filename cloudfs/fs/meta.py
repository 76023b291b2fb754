"""MetaCache: remote metadata kept for a while, so the kernel's many lookups
and getattrs do not each become an HTTP request.

Three TTL caches (cachetools):

* folder listings (path -> every child), filled by one paged walk; a lookup of
  any child of a cached listing is answered from it, including "no such name";
* single entries (path -> Entry), from stats;
* negative entries (path -> absent), kept briefly.

The filesystem's own changes (create, unlink, rename, a landed upload...)
update the cache at once, so it never contradicts what this mount did.
Changes made by other clients show up when the entries expire, or at once
where the server has a change feed (``cloudfs.fs.changes``).

A server answer may be read before one of this mount's changes and arrive
after it (a listing asked for just before an upload lands): it must not undo
the change, or a file created here vanishes from its folder for the TTL, a
file replaced under a new id shows its old object (a new inode).  So every
change is numbered (:attr:`MetaCache.epoch`), an answer is filled in with the
number its request started at (``since``: :meth:`MetaCache.fill`,
:meth:`~MetaCache.fill_absent`, :meth:`~MetaCache.put_listing`), and where
this mount changed a path after that, the change stands.

Behind the TTL caches, the last known state (LRU, same bounds) answers while
the server cannot be reached: see :meth:`MetaCache.known_entry`.

Plain ``def`` only: every method is atomic with respect to other trio tasks.
"""

from __future__ import annotations

import posixpath
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cachetools import LRUCache, TTLCache

from cloudfs.client.models import Entry


@dataclass
class Listing:
    folder: Entry
    children: dict[str, Entry] = field(default_factory=dict)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: returned by :meth:`MetaCache.child` when the name is known not to exist
ABSENT = _Absent()


class _Unchecked:
    """An answer read before the oldest change still remembered."""


_UNCHECKED = _Unchecked()


#: this mount's changes remembered for answers read before them (the newest
#: this many; an answer read before the oldest of them is not cached)
CHANGES_KEPT = 65536


def join(parent: str, name: str) -> str:
    return posixpath.join(parent, name)


def split(path: str) -> tuple[str, str]:
    parent, name = posixpath.split(path)
    return parent or "/", name


class MetaCache:
    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        negative_ttl_s: float = 5.0,
        max_listed_entries: int = 200_000,
        max_entries: int = 100_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.negative_ttl_s = negative_ttl_s
        self._max_listed_entries = max_listed_entries
        self._max_entries = max_entries
        self._timer = timer
        self.ttl_s = ttl_s
        self._listings, self._entries = self._fresh_caches(ttl_s)
        self._negative: TTLCache[str, bool] = TTLCache(
            maxsize=max_entries, ttl=max(negative_ttl_s, 1e-9), timer=timer
        )
        # the last known state, past the TTL: what an offline mount shows
        self._known_listings: LRUCache[str, Listing] = LRUCache(
            maxsize=max_listed_entries, getsizeof=lambda l: len(l.children) + 1
        )
        self._known_entries: LRUCache[str, Entry] = LRUCache(maxsize=max_entries)
        #: the number of this mount's last change (see the module docstring)
        self.epoch = 0
        #: path -> (the number of this mount's last change there, what it left: an entry or ABSENT), oldest first
        self._changes: OrderedDict[str, tuple[int, Entry | _Absent]] = OrderedDict()
        #: answers read before this change cannot be checked (the changes before it were let go)
        self._floor = 0

    def _fresh_caches(self, ttl_s: float) -> tuple[TTLCache[str, Listing], TTLCache[str, Entry]]:
        # listings are sized by their number of children, so one huge folder cannot pin memory forever
        listings: TTLCache[str, Listing] = TTLCache(
            maxsize=self._max_listed_entries, ttl=ttl_s, timer=self._timer,
            getsizeof=lambda l: len(l.children) + 1,
        )
        return listings, TTLCache(maxsize=self._max_entries, ttl=ttl_s, timer=self._timer)

    def retime(self, ttl_s: float) -> None:
        """Start over with another TTL (the change feed came or went): the TTL caches are
        dropped; the last known state (what an offline mount shows) stays."""
        self.ttl_s = ttl_s
        self._listings, self._entries = self._fresh_caches(ttl_s)
        self._negative.clear()

    # ---- reads -------------------------------------------------------------------
    def listing(self, path: str) -> Listing | None:
        return self._listings.get(path)

    def entry(self, path: str) -> Entry | _Absent | None:
        """The entry at ``path``, ABSENT if known missing, None if unknown."""
        parent, name = split(path)
        if not name:
            cached = self._entries.get(path)
            if cached is None and (listing := self._listings.get(path)) is not None:
                return listing.folder
            return cached
        listing = self._listings.get(parent)
        if listing is not None:
            return listing.children.get(name, ABSENT)
        found = self._entries.get(path)
        if found is not None:
            return found
        if self.negative_ttl_s > 0 and path in self._negative:
            return ABSENT
        return None

    def known_entry(self, path: str) -> Entry | _Absent | None:
        """Like :meth:`entry`, from the last known state whatever its age
        (for a mount that cannot reach the server)."""
        current = self.entry(path)
        if current is not None:
            return current
        parent, name = split(path)
        listing = self._known_listings.get(parent) if name else None
        if listing is not None:
            return listing.children.get(name, ABSENT)
        return self._known_entries.get(path)

    def known_listing(self, path: str) -> Listing | None:
        return self._listings.get(path) or self._known_listings.get(path)

    # ---- fills ---------------------------------------------------------------------
    def put_listing(self, folder: Entry, children: Iterable[Entry], since: int | None = None) -> Listing:
        """A folder's listing; ``since``: the server's answer, asked for at
        that change number (see :meth:`current_children`; not cached if too
        old to check)."""
        if since is not None:
            children = self.current_children(children, since)
            children += self.added_since(folder.path, since, {child.name for child in children})
        listing = Listing(folder, {child.name: child for child in children})
        if since is not None and since < self._floor:
            return listing
        if len(listing.children) + 1 <= self._listings.maxsize:
            self._listings[folder.path] = listing
            # the same object: changes made through put() reach both
            self._known_listings[folder.path] = listing
        self._entries[folder.path] = folder
        self._known_entries[folder.path] = folder
        # names known missing that the listing shows: looked at from the
        # smaller side (few negatives, or none, against a folder of thousands)
        if len(self._negative) < len(listing.children):
            shown = [path for path in self._negative
                     if split(path)[0] == folder.path and split(path)[1] in listing.children]
        else:
            shown = [join(folder.path, name) for name in listing.children]
        for path in shown:
            self._negative.pop(path, None)
        return listing

    def put(self, entry: Entry) -> None:
        """This mount changed the object at ``entry.path`` (made, renamed,
        uploaded...): ``entry`` is what is there now."""
        self._changed(entry.path, entry)
        self._store(entry)

    def fill(self, entry: Entry, since: int) -> Entry | _Absent:
        """The server's answer for ``entry.path``, asked for at change number
        ``since``: cached unless this mount changed the path since.  Returns
        what the path holds now (``entry``, or what the change left)."""
        change = self._change_since(entry.path, since)
        if change is None:
            self._store(entry)
            return entry
        return change if isinstance(change, (Entry, _Absent)) else entry  # (unchecked: the answer as is)

    def fill_absent(self, path: str, since: int) -> Entry | _Absent:
        """The server had nothing at ``path`` (asked at ``since``): as :meth:`fill`."""
        change = self._change_since(path, since)
        if change is None:
            self.put_absent(path)
            return ABSENT
        return change if isinstance(change, (Entry, _Absent)) else ABSENT

    def _store(self, entry: Entry) -> None:
        self._entries[entry.path] = entry
        self._known_entries[entry.path] = entry
        self._negative.pop(entry.path, None)
        parent, name = split(entry.path)
        if name:
            for listings in (self._listings, self._known_listings):
                listing = listings.get(parent)
                if listing is not None:
                    listing.children[name] = entry

    # ---- answers read before this mount's changes -----------------------------
    def _changed(self, path: str, state: Entry | _Absent) -> None:
        self.epoch += 1
        changes = self._changes
        changes.pop(path, None)
        changes[path] = (self.epoch, state)
        if len(changes) > CHANGES_KEPT:
            _, (epoch, _) = changes.popitem(last=False)
            self._floor = epoch

    def _change_since(self, path: str, since: int) -> Entry | _Absent | _Unchecked | None:
        """What this mount's last change at ``path`` after ``since`` left
        there (None: no change since; _UNCHECKED: cannot tell)."""
        if since >= self.epoch:
            return None
        if since < self._floor:
            return _UNCHECKED
        found = self._changes.get(path)
        return found[1] if found is not None and found[0] > since else None

    def current_children(self, children: Iterable[Entry], since: int) -> list[Entry]:
        """A folder's ``children`` as listed by the server (asked at
        ``since``), each as this mount left it if it changed it since
        (those it removed left out); see :meth:`added_since` for the rest."""
        if since >= self.epoch:
            return list(children)
        current = []
        for child in children:
            found = self._changes.get(child.path)
            if found is None or found[0] <= since:
                current.append(child)
            elif isinstance(found[1], Entry):
                current.append(found[1])
        return current

    def added_since(self, folder: str, since: int, names: set[str]) -> list[Entry]:
        """What this mount put in ``folder`` after ``since`` that is not among ``names``."""
        added = []
        for path, (epoch, state) in reversed(self._changes.items()):
            if epoch <= since:
                break
            if isinstance(state, Entry):
                parent, name = split(path)
                if parent == folder and name not in names:
                    added.append(state)
        return added

    def current(self, entry: Entry, since: int) -> Entry:
        """``entry`` (read at ``since``), or what this mount put at its path since."""
        change = self._change_since(entry.path, since)
        return change if isinstance(change, Entry) else entry

    def put_absent(self, path: str) -> None:
        if self.negative_ttl_s > 0:
            self._negative[path] = True
        self._entries.pop(path, None)

    # ---- changes made by this mount ----------------------------------------
    def remove(self, path: str) -> None:
        """``path`` no longer exists (for a folder that was not empty, also
        call :meth:`forget_subtree`)."""
        parent, name = split(path)
        for listings in (self._listings, self._known_listings):
            listings.pop(path, None)
            listing = listings.get(parent)
            if listing is not None:
                listing.children.pop(name, None)
        self._known_entries.pop(path, None)
        self._changed(path, ABSENT)
        self.put_absent(path)

    def invalidate(self, path: str) -> None:
        """Drop what is known about ``path`` itself; refetched on next use."""
        self._entries.pop(path, None)
        self._listings.pop(path, None)
        self._negative.pop(path, None)

    def invalidate_listing(self, path: str) -> None:
        self._listings.pop(path, None)

    def forget_subtree(self, path: str) -> None:
        """Drop everything cached at or below ``path`` (a folder renamed or
        removed with its contents).  Scans the caches: not for hot paths."""
        prefix = path.rstrip("/") + "/"
        for cache in (self._listings, self._entries, self._negative, self._known_listings,
                      self._known_entries):
            for key in [k for k in list(cache.keys()) if k == path or k.startswith(prefix)]:
                cache.pop(key, None)

    def clear(self) -> None:
        self._listings.clear()
        self._entries.clear()
        self._negative.clear()
