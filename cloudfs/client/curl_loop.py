"""libcurl transfers driven by the trio event loop itself, without a
worker thread: the path of small ranges (a cold random read's one page).

A small range costs more in handing it to a worker thread and hearing back
(two wakeups, a thread switch each way, trio's bookkeeping) than its bytes
cost to receive: a cold random 4 KiB read spent about a fifth of the
mount's CPU there.  Here the task that wants the range runs libcurl's
non-blocking "multi socket" interface: libcurl says which sockets it waits
on (kept in an epoll set of the handle's own, whose one descriptor trio
waits on) and when its next timeout is due, and the task calls
``socket_action`` when either comes.  The body callbacks run in this
thread, inside ``socket_action``: fine for a few hundred KiB, which is why
bulk ranges stay in worker threads (:mod:`cloudfs.client.curl`).

Every wait is bounded by libcurl's own timeouts (the transfer's options);
cancelling the task takes the transfer out of the multi handle, which ends
it at once: nothing writes to the file after :meth:`LoopHandle.perform`
returns or raises.
"""

from __future__ import annotations

import math
import select

import pycurl
import trio

from cloudfs.client.curl import IdleHandles, Outcome

#: epoll events libcurl asks for, by its POLL_* code
_WANTS = {
    pycurl.POLL_IN: select.EPOLLIN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT,
}
#: a wait with no timeout from libcurl ends after this long anyway (a
#: ``socket_action`` on a timeout that was not due does nothing)
MAX_WAIT_S = 1.0


class LoopHandle:
    """One easy handle in a multi handle of its own (which keeps its
    connection alive between transfers), lent to one task at a time."""

    def __init__(self) -> None:
        self.curl = pycurl.Curl()
        self._multi = pycurl.CurlMulti()
        self._poller = select.epoll()
        #: libcurl's next timeout in ms (-1: none)
        self._timeout_ms = -1
        #: the sockets in the epoll set
        self._registered: set[int] = set()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)

    def _on_socket(self, what: int, fd: int, _multi: object, _data: object) -> None:
        registered = self._registered
        try:
            if what == pycurl.POLL_REMOVE:
                if fd in registered:
                    registered.discard(fd)
                    self._poller.unregister(fd)
            elif fd in registered:
                try:
                    self._poller.modify(fd, _WANTS[what])
                except FileNotFoundError:  # closed and opened again under the same number
                    self._poller.register(fd, _WANTS[what])
            else:
                self._poller.register(fd, _WANTS[what])
                registered.add(fd)
        except OSError:
            pass  # a socket libcurl closed before saying so: the kernel took it out of the set

    def _on_timer(self, timeout_ms: int) -> None:
        self._timeout_ms = timeout_ms

    async def perform(self) -> Outcome:
        """Run the transfer set up on :attr:`curl` to its end: None, or
        libcurl's error (code, message)."""
        multi = self._multi
        multi.add_handle(self.curl)
        try:
            self._act(pycurl.SOCKET_TIMEOUT, 0)
            while True:
                ended = self._ended()
                if ended is not None:
                    return ended[1]
                if self._timeout_ms == 0:
                    self._act(pycurl.SOCKET_TIMEOUT, 0)
                    await trio.lowlevel.checkpoint()  # a transfer that keeps libcurl busy yields too
                    continue
                wait_s = self._timeout_ms / 1000 if self._timeout_ms > 0 else math.inf
                with trio.move_on_after(min(wait_s, MAX_WAIT_S)):
                    await trio.lowlevel.wait_readable(self._poller.fileno())
                events = self._poller.poll(0)
                if not events:
                    self._act(pycurl.SOCKET_TIMEOUT, 0)
                for fd, mask in events:
                    self._act(fd, (pycurl.CSELECT_IN if mask & select.EPOLLIN else 0)
                              | (pycurl.CSELECT_OUT if mask & select.EPOLLOUT else 0)
                              | (pycurl.CSELECT_ERR if mask & (select.EPOLLERR | select.EPOLLHUP) else 0))
        finally:
            multi.remove_handle(self.curl)  # ends the transfer if it is still running
            for fd in self._registered:
                try:
                    self._poller.unregister(fd)
                except OSError:
                    pass
            self._registered.clear()

    def _act(self, fd: int, events: int) -> None:
        self._multi.socket_action(fd, events)

    def _ended(self) -> tuple[bool, Outcome] | None:
        """(True, how it ended) once the transfer has ended; None while it runs."""
        _queued, ok, failed = self._multi.info_read()
        if ok:
            return True, None
        if failed:
            _handle, code, message = failed[0]
            return True, (int(code), str(message))
        return None

    def close(self) -> None:
        self._multi.close()
        self.curl.close()
        self._poller.close()


class LoopHandles(IdleHandles[LoopHandle]):
    """Idle :class:`LoopHandle` s."""

    def __init__(self, keep: int = 8) -> None:
        super().__init__(LoopHandle, keep)
