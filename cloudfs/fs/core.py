"""Core: the state every filesystem operation shares, and the lookups they all need.

Holds the inode table, the metadata cache, open handles, per-inode locks, the
client, the read fetcher and the write-back, and answers the two questions
every operation starts with: "which remote object is this name?" and "what
are this node's attributes?".  Namespace changes live in ``namespace.py``,
file content in ``content.py``; ``ops.py`` adapts all of it to pyfuse3.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import time
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass

import trio

from cloudfs.cache.blocks import cache_name
from cloudfs.cache.fetcher import Fetcher, Source
from cloudfs.cache.ranges import Span
from cloudfs.client.api import Client
from cloudfs.client.models import Capacity, Entry
from cloudfs.client.paths import MAX_NAME_BYTES
from cloudfs.config import MountSettings
from cloudfs.errors import CloudfsError
from cloudfs.fs import attrs
from cloudfs.fs.connectivity import Connectivity
from cloudfs.fs.errors import FsError, fail
from cloudfs.fs.pinset import PinSet
from cloudfs.fs.handles import HandleTable, InodeLocks
from cloudfs.fs.inodes import InodeTable, Node, detach_node
from cloudfs.fs.links import LinkRule
from cloudfs.fs.listing import FolderListing, Shown
from cloudfs.fs.meta import ABSENT, MetaCache, join, split
from cloudfs.fs.misses import FolderMisses
from cloudfs.fs.records import Uploaded
from cloudfs.upload.spares import KEEP as SPARES_KEPT, SPARES_FOLDER, SpareFiles
from cloudfs.upload.staging import LocalFile, is_unsent
from cloudfs.upload.writeback import WriteBack

log = logging.getLogger(__name__)

#: statfs asks the server at most this often
CAPACITY_TTL_S = 5.0


def source_of(entry: Entry) -> Source:
    return Source(cache_name(entry.file_id, entry.version, entry.size), entry.size, entry)


@dataclass
class _CapacityCache:
    value: Capacity | None = None
    at: float = -1e9
    #: this mount freed space since ``value`` was read: ``df`` should show it
    #: at once, but ``value`` still bounds the free space from below
    freed: bool = False


class Core:
    def __init__(
        self,
        client: Client,
        settings: MountSettings,
        table: InodeTable,
        meta: MetaCache,
        fetcher: Fetcher,
        writeback: WriteBack,
        nursery: trio.Nursery | None = None,
    ) -> None:
        self.client = client
        #: where a folder's pages are fetched while readdir hands out the first ones (None: in readdir)
        self.nursery = nursery
        self.settings = settings
        self.table = table
        self.meta = meta
        self.fetcher = fetcher
        self.writeback = writeback
        # a staged file's base is fetched from where its object is now; a
        # landed upload rebinds the inode (a new id) in the same step
        writeback.attach(fetch_base=self.fetch_base, on_uploaded=self.upload_landed)
        self.handles = HandleTable()
        self.locks = InodeLocks()
        self.owner = attrs.Ownership(settings.uid, settings.gid, settings.umask)
        #: what the kernel is told to cache entries and attributes for (longer while the change feed is live)
        self.metadata_ttl_s = settings.metadata_ttl_s
        assert settings.cache_dir is not None
        self.staging_dir = settings.cache_dir / "staging"
        #: new files' staging files, made ahead off the event loop (while :meth:`SpareFiles.run` runs)
        self.spares = SpareFiles(self.staging_dir / SPARES_FOLDER, keep=0 if settings.read_only else SPARES_KEPT)
        self._capacity = _CapacityCache()
        #: where the server keeps no metadata, a link's name carries the mark
        self.links = LinkRule(by_name=not client.keeps_metadata)
        #: offline, metadata comes from the last known state (see connectivity.py)
        self.connectivity = Connectivity(client.capacity)
        #: paths kept in the read cache for offline use (``cloudfs pin``)
        self.pins = PinSet(settings.cache_dir / "pins.json")
        #: a run of lookups missing the cache in one folder lists it (see misses.py)
        self.misses = FolderMisses(lambda: meta.ttl_s, page_size=client.settings.page_size)

    # ---- nodes -------------------------------------------------------------
    def node(self, ino: int) -> Node:
        node = self.table.get(ino)
        if node is None:
            # the kernel asked about an inode we never handed out or already dropped
            raise fail(errno.ESTALE)
        return node

    def remember(self, entry: Entry, *, lookup: bool = True, since: int | None = None) -> Node:
        """The node of ``entry``; ``since``: the change number ``entry`` was
        read at (a readdir pass hands out what it listed a while ago): what
        this mount put at its path since then is remembered instead."""
        if since is not None:
            entry = self.meta.current(entry, since)
        node = self.table.remember(entry, lookup=lookup)
        if node.local is None:
            # a replayed pending upload becomes visible through its inode
            node.local = self.writeback.files.get(entry.file_id)
        return node

    def attributes(self, node: Node) -> attrs.Attributes:
        return attrs.build(node, self.owner, self.metadata_ttl_s, link=self.is_link(node))

    def is_link(self, node: Node) -> bool:
        return self.links.is_link(node.entry, getattr(node.local, "metadata", None))

    def settle(self, node: Node) -> None:
        """Drop a node's staged content once it is clean and nobody has it open,
        then the node itself if the kernel no longer knows it."""
        local = node.local
        if isinstance(local, LocalFile) and node.opens == 0 and not local.dirty:
            if node.unlinked or self.writeback.release(local):
                local.discard()
                node.local = None
        self.table.drop_if_unused(node)

    def upload_landed(self, local: LocalFile, entry: Entry, old_file_id: str) -> None:
        """The write-back's news: ``local``'s content is now ``entry`` on the
        server (the node was known by ``old_file_id``)."""
        self.meta.put(entry)
        node = self.table.by_file_id(old_file_id)
        if node is None:
            return
        shown = self.attributes(node)
        if entry.file_id != old_file_id and entry.path != node.entry.path:
            # the local content went to a new object (conflict copy): the node
            # shows the server's version again once nobody writes to it.  A
            # file created here whose name another client took first has no
            # server version: the name is theirs, the node names nothing now
            if is_unsent(old_file_id):
                detach_node(self.table, node)
            if node.local is local and local.writers == 0:
                node.local = None
            self.meta.invalidate(node.path)
        else:
            if entry.file_id != old_file_id:
                # a new object at the node's own path: a backend whose replace
                # gives a new id (capabilities.replace_gives_new_id) uploaded
                # beside and swapped it in, so it is the same file to us
                self.table.rebind(node, entry)
                if not is_unsent(old_file_id):
                    self.table.records.drop(old_file_id)  # (replaced: that object is gone)
            node.entry = entry
            if not local.dirty:
                # the kernel's pages were written through us: they are this version
                node.cached_version = entry.version
                # the times shown so far stay, in this mount and the next (see attrs.py);
                # (still dirty: the content shown is newer, and its own upload will record it)
                node.uploaded = Uploaded(node.ino, entry.version, shown.st_mtime_ns, shown.st_ctime_ns)
                self.table.records.put(entry.file_id, node.uploaded)
        self.settle(node)

    def keep_times(self, node: Node, mtime_ns: int | None = None) -> None:
        """This mount changed the status of ``node`` (a rename, chmod,
        utimensat: its ``changed_ns``; ``mtime_ns``: the mtime set): where
        its times are recorded for the next mount, record the new ones."""
        uploaded = node.uploaded
        if uploaded is None or uploaded.version != node.entry.version:
            return
        node.uploaded = Uploaded(uploaded.ino, uploaded.version, uploaded.mtime_ns if mtime_ns is None else mtime_ns,
                                 max(uploaded.ctime_ns, node.changed_ns or 0))
        self.table.records.put(node.entry.file_id, node.uploaded)

    def check_writable(self) -> None:
        if self.settings.read_only:
            raise fail(errno.EROFS)

    # ---- names ---------------------------------------------------------------
    async def child(self, parent: Node, name: str) -> Entry:
        """The remote object ``name`` in folder ``parent``; ENOENT if none.
        Where links are told by name, ``name`` may be a link's shown name."""
        if not parent.is_dir:
            raise fail(errno.ENOTDIR)
        path = join(parent.path, name)
        if not self.links.by_name:
            return await self._child_at(path, parent)
        try:
            return await self._child_at(path, parent)
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            link_name = self.links.stored_name(name, True)
            if len(link_name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
                raise  # no link file can have this name
            try:
                entry = await self._child_at(join(parent.path, link_name), parent)
            except FsError:
                raise exc from None
            if not self.links.is_link(entry):
                raise exc from None
            return entry

    async def _child_at(self, path: str, folder: Node) -> Entry:
        cached = self.meta.entry(path)
        if cached is None and not self.connectivity.offline:
            await self._list_on_misses(folder)
            cached = self.meta.entry(path)
        if isinstance(cached, Entry):
            return self._shown_at(cached)
        if cached is ABSENT:
            return self._uploading_at(path)
        if self.connectivity.offline:
            return self._known_child_at(path, None)
        since = self.meta.epoch
        try:
            found = self.meta.fill(await self.client.stat(path), since)
        except CloudfsError as exc:
            if self.connectivity.failed(exc):
                return self._known_child_at(path, exc)
            if exc.errno != errno.ENOENT:
                raise
            found = self.meta.fill_absent(path, since)
        # (what this mount did at the path while the server was asked stands: see meta.py)
        return self._shown_at(found) if isinstance(found, Entry) else self._uploading_at(path)

    async def _list_on_misses(self, folder: Node) -> None:
        """A lookup in ``folder`` missed the cache: after a run of them, the
        folder's listing is fetched once (lookups meanwhile wait for it) and
        its children are cached as a stat of each would have cached them;
        until then each lookup costs a stat (see misses.py).  The listing is
        not kept as the folder's listing: a name it lacks is still asked for
        (a stat, then a negative entry, as before), so a name another client
        makes there shows at once, and readdir still lists the folder afresh."""
        fetching = self.misses.fetching(folder.path)
        if fetching is not None:
            await fetching.wait()
            return
        known = self.meta.known_listing(folder.path)
        if not self.misses.note(folder.path, len(known.children) if known is not None else None):
            return
        with self.misses.listing(folder.path):
            since = self.meta.epoch
            try:
                _, children = await self.client.list_all(folder.path)
            except CloudfsError as exc:
                # (unreachable: the lookup answers offline; else its stat tells)
                self.connectivity.failed(exc)
                log.debug("listing %s for its lookups failed: %s", folder.path, exc)
                return
            for child in children:
                # (what this mount did at a path while the server was asked stands: see meta.py)
                self.meta.fill(child, since)

    def _known_child_at(self, path: str, exc: CloudfsError | None) -> Entry:
        """The server cannot be reached: the last known state answers."""
        known = self.meta.known_entry(path)
        if isinstance(known, Entry):
            return self._shown_at(known)
        if known is ABSENT:
            return self._uploading_at(path)
        raise fail(exc.errno if exc is not None and exc.errno else errno.EIO)

    def _shown_at(self, entry: Entry, in_flight: dict[str, Node] | None = None) -> Entry:
        """What a name shows: ``entry``, the server's object there, unless
        no inode stands for that object while this mount's upload to the path
        is in flight (``in_flight``: those nodes by path, if known).  That
        object may be the upload itself, landed a few round trips before the
        write-back hears of it under its new id (a replace that gives a new
        id, a file created by its upload), or its answer lost (until the next
        attempt): an inode of its own would show that version, not the file
        as written since, and stage a second copy of the file, which the
        upload, once heard of, pushes out of the write-back with what was
        written to it.  So until the upload lands the name shows the file
        being uploaded (another client's file there, the upload meets as a
        conflict and puts beside it)."""
        if entry.is_dir or self.table.by_file_id(entry.file_id) is not None:
            return entry
        if in_flight is None:
            in_flight = self._in_flight_nodes(entry.path)
        node = in_flight.get(entry.path)
        return entry if node is None else node.entry

    def _in_flight_nodes(self, at: str | None = None) -> dict[str, Node]:
        """Nodes in the namespace whose upload is running or failed, by path
        (``at``: only at that path)."""
        nodes = {}
        for local in self.writeback.in_flight(at):
            node = self.table.by_file_id(local.file_id)
            if node is not None and not node.unlinked and node.local is local:
                nodes[node.path] = node
        return nodes

    def _uploading_at(self, path: str) -> Entry:
        """For a name the server does not show: the entry of the file there
        whose new content this mount is uploading (or failed to); ENOENT if
        none.  A backend without in-place overwrite replaces a file by
        deleting it and renaming the new content into place (and the rename
        may fail), and a file created here is not there until its first
        upload: the file is ours to show until its upload lands."""
        for node in self.unconfirmed_files(at=path):
            if node.path == path:
                return node.entry
        raise fail(errno.ENOENT)

    def unconfirmed_files(self, at: str | None = None) -> list[Node]:
        """Nodes in the namespace whose new content is being uploaded or
        failed to, or that are not on the server yet: the server may not
        show them meanwhile (``at``: only those at that path)."""
        nodes = []
        for local in self.writeback.unconfirmed(at):
            node = self.table.by_file_id(local.file_id)
            if node is not None and not node.unlinked and node.local is local:
                nodes.append(node)
        return nodes

    async def child_or_none(self, parent: Node, name: str) -> Entry | None:
        try:
            return await self.child(parent, name)
        except (CloudfsError, FsError) as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    async def refresh(self, node: Node) -> None:
        """Bring a node's entry up to date within the metadata TTL."""
        if node.unlinked or node.local is not None:
            return
        cached = self.meta.entry(node.path)
        folder = self._folder_of(node) if cached is None and not self.connectivity.offline else None
        if folder is not None:
            await self._list_on_misses(folder)
            cached = self.meta.entry(node.path)
        if isinstance(cached, Entry):
            entry = cached
        elif cached is ABSENT:
            return
        elif self.connectivity.offline:
            return  # the node's entry is the last known state
        else:
            since = self.meta.epoch
            try:
                found = self.meta.fill(await self.client.stat(node.path), since)
            except CloudfsError as exc:
                if self.connectivity.failed(exc):
                    return
                if exc.errno == errno.ENOENT:
                    # gone remotely: the kernel learns it at its next lookup
                    self.meta.fill_absent(node.path, since)
                    return
                raise
            if not isinstance(found, Entry):
                return
            entry = found
        if entry.file_id == node.entry.file_id:
            node.entry = entry

    def _folder_of(self, node: Node) -> Node | None:
        """The node of ``node``'s folder, if the kernel knows it."""
        parent, name = split(node.path)
        if not name:
            return None
        return next((n for n in self.table.at_path(parent) if n.is_dir and not n.unlinked), None)

    async def listing(self, folder: Node) -> list[Entry]:
        """Every child of a folder (see :meth:`open_listing`), all at once."""
        listing = FolderListing(since=self.meta.epoch)
        await self._fill_listing(folder, listing)
        return [entry for _, entry in listing.shown]

    async def open_listing(self, folder: Node) -> FolderListing:
        """One pass over a folder for readdir: every child, from the cache, or
        from a paged walk whose pages readdir may hand out as they come
        (fetched by a task in the mount's nursery, if there is one), and
        the files there that the server does not show while this mount
        uploads them (see :meth:`_uploading_at`)."""
        listing = FolderListing(since=self.meta.epoch)
        known = self.meta.listing(folder.path) is not None or self.connectivity.offline
        if self.nursery is None or known:
            await self._fill_listing(folder, listing)
        else:
            listing.scope = trio.CancelScope()
            self.nursery.start_soon(self._fill_in_background, folder, listing)
        return listing

    async def _fill_in_background(self, folder: Node, listing: FolderListing) -> None:
        assert listing.scope is not None
        with listing.scope:
            try:
                await self._fill_listing(folder, listing)
            except Exception as exc:  # readdir raises it: never the mount's nursery
                if not isinstance(exc, (CloudfsError, FsError)):
                    log.exception("listing %s failed", folder.path)
                listing.finish(exc)
        if not listing.done:  # (cancelled: the folder was closed)
            listing.finish(fail(errno.EINTR))

    async def _fill_listing(self, folder: Node, listing: FolderListing) -> None:
        cached = self.meta.listing(folder.path)
        if cached is None and self.connectivity.offline:
            cached = self.meta.known_listing(folder.path)
        if cached is not None:
            children = list(cached.children.values())
            self._end_listing(folder, listing, children, self._as_shown(children))
            return
        links = self.links
        meta = self.meta
        since = listing.since
        children = []
        #: where a link is told by its name, whether it is shown without its
        #: mark depends on every other name: links wait for the last page
        held: list[Entry] = []
        parent = None
        try:
            async with aclosing(self.client.list_pages(folder.path)) as pages:
                async for parent, page in pages:
                    # as this mount left what it changed since the listing was asked for
                    page = meta.current_children(page, since)
                    children += page
                    shown = self._as_shown(page)
                    if links.by_name and any(links.is_link(child) for child in shown):
                        held += [child for child in shown if links.is_link(child)]
                        shown = [child for child in shown if not links.is_link(child)]
                    listing.add(self._shown((child.name, child) for child in shown))
        except CloudfsError as exc:
            known = self.meta.known_listing(folder.path) if self.connectivity.failed(exc) else None
            if known is None or listing.shown:
                raise
            # now offline: from the last known listing
            children = list(known.children.values())
            self._end_listing(folder, listing, children, self._as_shown(children))
            return
        assert parent is not None  # (list_pages yields at least once)
        if parent.file_id == folder.entry.file_id:
            folder.entry = parent
        # (what this mount made there meanwhile, as it left it)
        added = meta.added_since(folder.path, since, {child.name for child in children})
        meta.put_listing(parent, children + added, since)
        self._end_listing(folder, listing, children + added, held + self._as_shown(added))

    def _end_listing(self, folder: Node, listing: FolderListing, children: list[Entry], rest: list[Entry]) -> None:
        """The last of a pass over ``children``: ``rest`` (those of them not
        handed out yet), and the files this mount is uploading there."""
        uploading = [node for node in self.unconfirmed_files() if split(node.path)[0] == folder.path]
        if uploading:  # (rare: the names of a large folder are not gathered for nothing)
            names = {child.name for child in children}
            extra = self._as_shown([node.entry for node in uploading if node.entry.name not in names])
            children, rest = children + extra, rest + extra
        listing.add(self._shown(self.links.shown_names(rest, children)))
        listing.finish()

    def _as_shown(self, children: list[Entry]) -> list[Entry]:
        """``children`` as this mount shows them (see :meth:`_shown_at`)."""
        in_flight = self._in_flight_nodes()
        if not in_flight:
            return children
        return [self._shown_at(child, in_flight) if child.path in in_flight else child for child in children]

    @staticmethod
    def _shown(named: Iterable[tuple[str, Entry]]) -> list[Shown]:
        """(name as the kernel is given it, entry); a name that cannot be given is left out."""
        shown = []
        for name, entry in named:
            try:
                shown.append((os.fsencode(name), entry))
            except UnicodeEncodeError:
                log.warning("skipping %s: its name cannot be represented", entry.path)
        return shown

    # ---- content ---------------------------------------------------------------
    def located(self, entry: Entry) -> Entry:
        """``entry``'s content version at its object's current path.

        The server signs downloads by path, but an open file (or a staged
        one's base) may have been renamed, or its folder moved, since
        ``entry`` was read: the inode table knows where the object is now."""
        node = self.table.by_file_id(entry.file_id)
        if node is None or node.unlinked or node.path == entry.path:
            return entry
        return dataclasses.replace(entry, path=node.path)

    async def fetch_base(self, entry: Entry, span: Span) -> bytes:
        """Bytes of a remote content version, through the read cache."""
        return await self.fetcher.read(source_of(self.located(entry)), span)

    async def capacity(self, *, fresh: bool = False, at_least: bool = False) -> Capacity:
        """The account's capacity, cached briefly (statfs comes often);
        ``fresh`` asks the server now (``cloudfs status`` checks reachability);
        ``at_least``: figures whose free space is a lower bound will do (a
        space check: what this mount deleted since only adds to it, so a
        close after an unlink need not wait for the server)."""
        cache = self._capacity
        now = time.monotonic()
        if self.connectivity.offline and cache.value is not None and not fresh:
            return cache.value  # df on an offline mount: the last known figures, at once
        if fresh or cache.value is None or now - cache.at > CAPACITY_TTL_S or (cache.freed and not at_least):
            try:
                cache.value = await self.client.capacity()
            except CloudfsError as exc:
                if not self.connectivity.failed(exc) or cache.value is None or fresh:
                    raise
                return cache.value
            cache.at, cache.freed = now, False
        return cache.value

    def forget_capacity(self) -> None:
        """This mount freed space (a delete): the next ``df`` asks the server."""
        self._capacity.freed = True
