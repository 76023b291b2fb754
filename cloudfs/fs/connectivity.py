"""Whether the server answers, as the mount last saw it.

Once a request has found the server unreachable (a transport failure after
its retries), the mount is *offline*: metadata is answered at once from the
last known state (``MetaCache.known_entry``) and content from the read
cache, instead of every call waiting out its own retries and timeout.  A
probe asks the server every few seconds; its first answer ends the offline
state, and the write-back catches up on its own (its retries never stop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio

from cloudfs.errors import CloudfsError, ServerError, TLSFailure, TransportError

log = logging.getLogger(__name__)

#: how often an offline mount asks whether the server is back, and how long it waits for the answer
PROBE_INTERVAL_S = 3.0
PROBE_TIMEOUT_S = 5.0


def unreachable(exc: BaseException) -> bool:
    """A failure that says the server cannot be reached at all (refused,
    unresolvable, timed out, cut), as opposed to one that it answered: an
    HTTP error status, a refused certificate or an API error."""
    return isinstance(exc, TransportError) and not isinstance(exc, (ServerError, TLSFailure))


class Connectivity:
    def __init__(self, probe: Callable[[], Awaitable[object]], *, interval_s: float = PROBE_INTERVAL_S) -> None:
        self._probe = probe
        self.interval_s = interval_s
        #: monotonic time the server was found unreachable; None while it answers
        self.down_since: float | None = None
        self._changed = trio.Event()

    @property
    def offline(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> bool:
        """Note a failed request; True if it means the server is unreachable."""
        if not unreachable(exc):
            return False
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("the server does not answer (%s): serving what is known until it is back", exc)
            self._changed.set()
        return True

    def answered(self) -> None:
        if self.down_since is not None:
            log.warning("the server answers again after %.0f s", time.monotonic() - self.down_since)
            self.down_since = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe the server while offline, until cancelled."""
        task_status.started()
        while True:
            if not self.offline:
                await self._changed.wait()
                self._changed = trio.Event()
                continue
            await trio.sleep(self.interval_s)
            try:
                with trio.move_on_after(PROBE_TIMEOUT_S) as waited:
                    await self._probe()
            except CloudfsError as exc:
                log.debug("server still unreachable: %s", exc)
                continue
            if not waited.cancelled_caught:
                self.answered()
