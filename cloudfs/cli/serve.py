"""Run one mount: wire client, caches, write-back and FUSE together, and
take it all down cleanly.

Startup order matters: the journal is replayed before the kernel sees the
filesystem, and the control socket and write-back run before ``READY``.
On unmount (or SIGINT/SIGTERM) the filesystem leaves the kernel first, then
pending uploads get a bounded time to finish (they stay journaled if not),
then the caches are closed.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import asdict
from typing import Any

import pyfuse3
import trio

from cloudfs.cache.blocks import BlockStore
from cloudfs.cache.fetcher import Fetcher
from cloudfs.cli import sdnotify
from cloudfs.cli.taskdump import dump_tasks_on_signal
from cloudfs.cli.control_server import ControlServer
from cloudfs.cli.version import version_line, versions
from cloudfs.client.api import CloudreveClient
from cloudfs.client.models import Entry
from cloudfs.config import MountSettings
from cloudfs.errors import CloudfsError
from cloudfs.client import clientid
from cloudfs.fs import inject
from cloudfs.fs.changes import LiveChanges
from cloudfs.fs.kernel import KernelInvalidator
from cloudfs.fs.core import Core
from cloudfs.fs.inodes import InodeTable
from cloudfs.fs.records import InodeRecords
from cloudfs.fs.meta import MetaCache
from cloudfs.fs.ops import Operations
from cloudfs.fs.pins import PinKeeper
from cloudfs.upload.journal import Journal, Record
from cloudfs.upload.writeback import WriteBack

log = logging.getLogger(__name__)

#: after unmount, pending uploads get this long before the process exits (they stay journaled)
SHUTDOWN_UPLOAD_S = 600.0
#: how long ``cloudfs status`` waits for the server's capacity before calling it unreachable
STATUS_CAPACITY_S = 5.0
#: how often a failing FUSE main loop is restarted before the mount gives up
MAX_LOOP_RESTARTS = 100
#: pinned files are checked for changes on the server at least this often
PIN_INTERVAL_MIN_S = 60.0
#: the kernel's read-ahead for the mount: 1 MiB makes sequential reads arrive
#: as 1 MiB requests instead of 128 KiB ones (a quarter of the per-request work)
KERNEL_READAHEAD_KB = 1024


def fuse_options(settings: MountSettings) -> set[str]:
    options = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
    options |= {f"fsname={settings.url}", "subtype=cloudfs", "noatime"}
    if settings.allow_other:
        options.add("allow_other")
    if settings.read_only:
        options.add("ro")
    options |= set(settings.fuse_options)
    return options


def raise_kernel_readahead(mountpoint: str, kb: int = KERNEL_READAHEAD_KB) -> None:
    """Set the mount's read-ahead in sysfs, where we may (root only).

    The device comes from /proc/self/mountinfo: stat()ing our own mountpoint
    from this process would wait on a FUSE request only this process answers."""
    try:
        with open("/proc/self/mountinfo") as fp:
            devices = [line.split()[2] for line in fp if len(line.split()) > 4 and line.split()[4] == mountpoint]
        if devices:
            with open(f"/sys/class/bdi/{devices[-1]}/read_ahead_kb", "w") as fp:
                fp.write(str(kb))
    except OSError as exc:
        log.debug("kernel read-ahead left as it is: %s", exc)


def lock_cache_dir(settings: MountSettings, stack: ExitStack) -> None:
    """One mount per account cache: two would race over the journal."""
    assert settings.cache_dir is not None
    settings.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(settings.cache_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    stack.callback(os.close, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CloudfsError(
            f"the cache dir {settings.cache_dir} is in use by another cloudfs mount of the same account",
            errno=errno.EBUSY,
        ) from None


async def serve(
    settings: MountSettings,
    connect: Callable[[], Awaitable[CloudreveClient]],
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Mount and serve until unmounted.  ``connect()`` detects the server and
    logs in, so those errors come before anything is mounted."""
    assert settings.cache_dir is not None
    # first, so every mount's log (appended to by the next mount) says what ran
    log.info("%s: mounting %s on %s", version_line(), settings.url, settings.mountpoint)
    with ExitStack() as stack:
        lock_cache_dir(settings, stack)
        client = await connect()
        client.use_client_id(clientid.load_or_create(settings.cache_dir / "client-id"))
        async with client, open_mount(settings, client) as (mount, pending):
            inject.install_from_env(mount.ops)  # test-only; does nothing unless its variable is set
            await mount.writeback.replay(pending)
            # (what a killed run left among the spares goes, but what its journal holds)
            await mount.nursery.start(mount.core.spares.run, [rec.staging for rec in pending])
            await mount.nursery.start(mount.writeback.run)
            await mount.nursery.start(mount.core.connectivity.run)
            await mount.nursery.start(mount.pin_keeper.run)
            await mount.nursery.start(mount.control.serve)
            pyfuse3.init(mount.ops, str(settings.mountpoint), fuse_options(settings))
            kernel = KernelInvalidator()
            try:
                mount.follow_changes(kernel)
                mount.nursery.start_soon(_tune_readahead, str(settings.mountpoint))
                mount.nursery.start_soon(_stop_on_signals)
                mount.nursery.start_soon(dump_tasks_on_signal, mount.writeback.describe)
                on_ready()
                sdnotify.notify("READY=1", f"STATUS=mounted {settings.url} on {settings.mountpoint}")
                log.info("mounted %s on %s", settings.url, settings.mountpoint)
                await _run_fuse_loop()
            finally:
                kernel.close()  # before the FUSE session goes
                pyfuse3.close(unmount=True)
            log.info("unmounted %s", settings.mountpoint)
            sdnotify.notify("STOPPING=1")
            await mount.finish_uploads()


@asynccontextmanager
async def open_mount(settings: MountSettings, client: CloudreveClient) -> AsyncIterator[tuple[Mount, list[Record]]]:
    """The parts of a mount over a connected ``client``, with its caches open,
    but nothing running and nothing in the kernel: the caller replays the
    returned journal records and starts what it needs in ``mount.nursery``,
    which is cancelled when the block ends.  ``serve`` adds FUSE; tests drive
    ``mount.ops`` in-process."""
    assert settings.cache_dir is not None
    with ExitStack() as stack:
        root = await client.stat("/")
        store = BlockStore(settings.cache_dir / "blocks", settings.cache_size)
        store.open()
        stack.callback(store.close)
        journal = Journal(settings.cache_dir / "journal.db")
        pending = journal.open()
        stack.callback(journal.close)
        (settings.cache_dir / "staging").mkdir(exist_ok=True)
        records = InodeRecords(settings.cache_dir / "inodes.jsonl")
        stack.callback(records.close)
        async with trio.open_nursery() as nursery:
            yield Mount(settings, client, root, store, journal, nursery, records), pending
            nursery.cancel_scope.cancel()


async def _run_fuse_loop() -> None:
    """pyfuse3's main loop, restarted if a handler ever lets an exception
    escape (``@fuse_op`` exists so that none does): the kernel connection is
    still good, so the mount carries on instead of vanishing under its users."""
    for attempt in range(1, MAX_LOOP_RESTARTS + 1):
        try:
            await pyfuse3.main()
            return
        except Exception:
            log.exception("the FUSE main loop failed (restart %d of %d)", attempt, MAX_LOOP_RESTARTS)
    raise RuntimeError("the FUSE main loop keeps failing; unmounting")


async def _tune_readahead(mountpoint: str) -> None:
    # after the kernel has processed FUSE's INIT reply, which would lower it again
    await trio.sleep(0.5)
    raise_kernel_readahead(mountpoint)


async def _stop_on_signals() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("received %s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
            return


class Mount:
    """The parts of one mount, built in dependency order."""

    def __init__(
        self,
        settings: MountSettings,
        client: CloudreveClient,
        root: Entry,
        store: BlockStore,
        journal: Journal,
        nursery: trio.Nursery,
        records: InodeRecords | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.nursery = nursery
        self.fetcher = Fetcher(store, client.stream, nursery, fill=client.fill, part_size=32 << 20, max_parallel=8)
        # the core attaches itself to it: it fetches bases and hears of landed uploads
        self.writeback = WriteBack(client, journal, store, delay_s=settings.upload_delay_s,
                                   max_parallel=settings.max_uploads)
        meta = MetaCache(ttl_s=settings.metadata_ttl_s, negative_ttl_s=settings.negative_ttl_s)
        self.core = Core(client, settings, InodeTable(root, records), meta, self.fetcher, self.writeback, nursery)
        self.ops = Operations(self.core)
        self.pin_keeper = PinKeeper(self.core, interval_s=max(settings.metadata_ttl_s, PIN_INTERVAL_MIN_S))
        self.control = ControlServer(settings.mountpoint, self.status, self.drain,
                                     {"pin": self.pin, "unpin": self.unpin}, progress=self.upload_status)
        self.changes: LiveChanges | None = None

    def follow_changes(self, kernel: KernelInvalidator | None) -> None:
        """Start following the server's change feed, if it may have one and it is wanted."""
        settings = self.settings
        if settings.events == "off":
            return
        changes = LiveChanges(self.core, kernel, live_ttl_s=settings.events_ttl_s,
                              fallback_ttl_s=settings.metadata_ttl_s)
        feed = self.client.change_feed(on_change=changes.note, on_state=changes.note)
        if feed is not None:
            self.changes = changes
            self.nursery.start_soon(changes.run, feed)

    def change_mode(self) -> dict[str, Any]:
        if self.changes is not None:
            return self.changes.describe()
        dialect = self.client.info.dialect
        why = ("events=off" if self.settings.events == "off"
               else "no change feed on Cloudreve 3" if dialect == "v3" else f"no change feed ({dialect})")
        return {"mode": f"ttl ({why})", "metadata_ttl_s": self.core.metadata_ttl_s}

    async def status(self) -> dict[str, Any]:
        settings = self.settings
        store = self.fetcher.store
        capacity, reachable = None, False
        try:
            with trio.move_on_after(STATUS_CAPACITY_S):
                capacity = await self.core.capacity(fresh=True)
                reachable = True
        except CloudfsError:
            pass
        return {
            "mountpoint": str(settings.mountpoint),
            "url": settings.url,
            "user": settings.user,
            "pid": os.getpid(),
            # the running mount's, which may be older than the installed command's
            "versions": versions(),
            "reachable": reachable,
            "capacity": {"total": capacity.total, "used": capacity.used} if capacity else None,
            "cache": {"used": store.used_bytes, "cap": store.cap_bytes, "dir": str(settings.cache_dir)},
            "inodes": len(self.core.table),
            "uploads": [asdict(s) for s in self.writeback.status()],
            "uploaded": self.writeback.uploads_done,
            #: content bytes downloaded since the mount started (read cache misses)
            "downloaded": self.fetcher.bytes_fetched,
            #: how changes by other clients reach the mount: the change feed, or TTLs
            "changes": self.change_mode(),
            #: the server stopped answering: metadata comes from the last known state
            "offline": self.core.connectivity.offline,
            "pins": self.pin_keeper.state.as_dict(self.core.pins.paths),
        }

    async def pin(self, request: dict[str, Any]) -> dict[str, Any]:
        """``cloudfs pin``: keep remote paths for offline use (each must exist)."""
        paths = [p for p in request.get("paths", []) if isinstance(p, str)]
        for path in paths:
            try:
                await self.client.stat(path)
            except CloudfsError as exc:
                return {"error": f"cannot pin {path}: {exc}"}
        self.core.pins.add(paths)
        self.pin_keeper.poke()
        return {"pinned": paths}

    async def unpin(self, request: dict[str, Any]) -> dict[str, Any]:
        paths = [p for p in request.get("paths", []) if isinstance(p, str)]
        missing = self.core.pins.remove(paths)
        self.pin_keeper.poke()  # the next pass tells the cache what it may evict again
        if missing:
            return {"error": "not pinned: " + ", ".join(missing)}
        return {"unpinned": paths}

    async def upload_status(self) -> dict[str, Any]:
        """What a drain reports every half second: the uploads alone.  (Not
        the whole status: that asks the server for the capacity each time,
        and ``cloudfs umount`` drains while the uploads it waits for run.)"""
        return {"uploads": [asdict(s) for s in self.writeback.status()]}

    async def drain(self, progress: Callable[[], Any]) -> list[dict[str, Any]]:
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def report() -> None:
                while not done.is_set():
                    await progress()
                    with trio.move_on_after(0.5):
                        await done.wait()

            nursery.start_soon(report)
            left = await self.writeback.drain()
            done.set()
        return [asdict(s) for s in left]

    async def finish_uploads(self) -> None:
        pending = [s for s in self.writeback.status()]
        if not pending:
            return
        log.info("waiting for %d pending upload(s) before exiting", len(pending))
        with trio.move_on_after(SHUTDOWN_UPLOAD_S):
            await self.writeback.drain()
        left = self.writeback.status()
        if left:
            log.warning("%d upload(s) still pending at exit; they stay journaled and resume at the next mount",
                        len(left))
