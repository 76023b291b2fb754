"""The in-memory event hub behind ``GET /file/events`` (Cloudreve 4.11+, ``pkg/filemanager/eventhub``).

A *topic* is the id of a subscribed folder; a *subscriber* is one client id
on one topic.  Behaviour mirrors Cloudreve:

* ``publish`` appends to the subscriber's buffer and (re)starts a debounce
  timer (``fs_event_push_debounce``, 5 s); when it fires, the buffer is merged
  (:func:`merge`) and pushed into a channel of 16 without waiting: whatever
  does not fit is dropped (a slow reader, or a burst of more than 16 changed
  files in one window, loses events and is not told);
* a dropped connection marks the subscriber offline instead of removing it:
  pending events go to the channel, later ones are kept ("persisted") and
  replayed, merged after one more debounce, when the same client id comes back
  ("resumed"); a subscriber offline longer than ``fs_event_push_max_age``
  (14 days) is removed by a periodic sweep (hourly in Cloudreve);
* everything is lost when the process restarts (Cloudreve deletes its stored
  events on start), so a client reconnecting then gets "subscribed".

All of it runs on the trio event loop: :meth:`EventHub.run` is the single
timer task that flushes subscribers whose debounce expired.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

log = logging.getLogger("cloudfs.server.events")

CHANNEL_SIZE = 16  # eventhub.bufSize
CREATE, MODIFY, RENAME, DELETE = "create", "modify", "rename", "delete"
Topic = int | tuple[str, int]  # a folder id; ("trash", uid) for the trash root, which has no row


@dataclass
class Event:
    type: str
    file_id: str
    src: str  # JSON "from"
    dst: str = ""  # JSON "to", set for renames only

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "file_id": self.file_id, "from": self.src, "to": self.dst}


@dataclass
class _Merged:
    base: str
    src: str
    dst: str


def merge(events: list[Event]) -> list[Event]:
    """``DebounceEvents``: collapse time-ordered events per file id, in order of first appearance.

    Create+Modify -> Create; Modify+Modify -> Modify; Create+Rename -> Create at the new path;
    Create+Delete -> nothing; Modify/Rename+Delete -> Delete (at the path of the later event);
    Rename a->b + Rename b->c -> Rename a->c, back to a -> nothing; Modify+Rename -> Rename;
    Delete+Create -> Create (a restore).
    """
    states: dict[str, _Merged] = {}
    for e in events:
        state = states.get(e.file_id)
        if state is None:
            states[e.file_id] = _Merged(e.type, e.src, e.dst)
            continue
        if e.type == CREATE:
            if state.base == DELETE:
                state.base, state.src, state.dst = CREATE, e.src, ""
        elif e.type == RENAME:
            if state.base == CREATE:
                state.src, state.dst = e.dst, ""
            elif state.base == MODIFY:
                state.base, state.src, state.dst = RENAME, e.src, e.dst
            elif state.base == RENAME:
                if state.src == e.dst:
                    del states[e.file_id]  # there and back again
                else:
                    state.dst = e.dst
        elif e.type == DELETE:
            if state.base == CREATE:
                del states[e.file_id]  # ephemeral object
            elif state.base in (MODIFY, RENAME):
                state.base, state.src, state.dst = DELETE, e.src, ""
        # a Modify after anything keeps the earlier state
    out = []
    for file_id, s in states.items():  # dicts keep first-insertion order; a re-added id goes last
        out.append(Event(s.base, file_id, s.src, s.dst if s.base == RENAME else ""))
    return out


class Subscriber:
    """One client id listening on one topic."""

    def __init__(self, client_id: str, uid: int, debounce: float, max_age: float) -> None:
        self.client_id = client_id
        self.uid = uid
        self.debounce = debounce
        self.max_age = max_age
        self.send, self.receive = trio.open_memory_channel[Event](CHANNEL_SIZE)
        self.online = True
        self.offline_since = 0.0
        self.buffer: list[Event] = []
        #: events that arrived while offline (Cloudreve stores them in its fs_events table)
        self.stored: list[Event] = []
        self.deadline: float | None = None  # debounce timer
        self.closed = False
        self.dropped = 0

    def publish(self, event: Event) -> None:
        if self.closed:
            return
        self.buffer.append(event)
        self.deadline = trio.current_time() + self.debounce

    def flush(self) -> None:
        self.deadline = None
        if not self.buffer or self.closed:
            return
        if not self.online:
            self.stored += self.buffer
        else:
            for event in merge(self.buffer):
                try:
                    self.send.send_nowait(event)
                except trio.WouldBlock:
                    self.dropped += 1  # non-blocking send: a slow reader loses events
                    log.debug("event for %s dropped (channel full)", self.client_id)
        self.buffer = []

    def set_online(self) -> None:
        self.online = True
        self.offline_since = 0.0
        self.buffer += self.stored
        self.stored = []
        if self.buffer:
            self.deadline = trio.current_time() + self.debounce

    def set_offline(self) -> None:
        self.flush()  # Unsubscribe: Stop() flushes what is pending while still online
        self.online = False
        self.offline_since = trio.current_time()

    def expired(self, now: float) -> bool:
        return not self.online and self.offline_since > 0 and now - self.offline_since > self.max_age

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.deadline = None
        self.buffer = []
        self.stored = []
        self.send.close()  # the stream sees the end and finishes


class HubClosed(RuntimeError):
    """``ErrEventHubClosed``."""


class EventHub:
    def __init__(self, debounce: float = 5.0, max_age: float = 14 * 86400.0,
                 cleanup_period: float = 3600.0) -> None:
        self.debounce = debounce
        self.max_age = max_age
        # Cloudreve sweeps hourly; a short max age (tests) is swept at its own pace
        self.cleanup_period = min(cleanup_period, max_age)
        self.topics: dict[Topic, dict[str, Subscriber]] = {}
        self.closed = False
        self._wakeup = trio.Event()

    # --- subscriptions -------------------------------------------------------------
    def subscribe(self, topic: Topic, client_id: str, uid: int) -> tuple[Subscriber, bool]:
        """(subscriber, resumed): an existing subscriber of this id is reactivated, its channel reused."""
        if self.closed:
            raise HubClosed("event hub is closed")
        subs = self.topics.setdefault(topic, {})
        existing = subs.get(client_id)
        if existing is not None and not existing.closed:
            existing.set_online()
            self._poke()
            return existing, True
        sub = Subscriber(client_id, uid, self.debounce, self.max_age)
        subs[client_id] = sub
        return sub, False

    def unsubscribe(self, topic: Topic, client_id: str) -> None:
        if self.closed:
            return
        sub = self.topics.get(topic, {}).get(client_id)
        if sub is not None and sub.online:  # the stream's end may report twice
            sub.set_offline()

    def subscribers(self, topic: Topic) -> list[Subscriber]:
        return list(self.topics.get(topic, {}).values())

    def has_subscribers(self) -> bool:
        return bool(self.topics)

    def publish(self, sub: Subscriber, event: Event) -> None:
        sub.publish(event)
        self._poke()

    def close(self) -> None:
        """Server shutdown: every stream ends."""
        if self.closed:
            return
        self.closed = True
        for subs in self.topics.values():
            for sub in subs.values():
                sub.close()
        self.topics = {}
        self._poke()

    # --- timers ----------------------------------------------------------------------
    def _poke(self) -> None:
        self._wakeup.set()

    def _next_deadline(self) -> float:
        deadlines = [s.deadline for subs in self.topics.values() for s in subs.values()
                     if s.deadline is not None]
        return min(deadlines, default=math.inf)

    def flush_due(self, now: float) -> None:
        for subs in list(self.topics.values()):
            for sub in list(subs.values()):
                if sub.deadline is not None and sub.deadline <= now:
                    sub.flush()

    def sweep(self, now: float) -> None:
        """cleanupExpiredSubscribers."""
        for topic, subs in list(self.topics.items()):
            for client_id, sub in list(subs.items()):
                if sub.expired(now):
                    sub.close()
                    del subs[client_id]
            if not subs:
                del self.topics[topic]

    async def run(self) -> None:
        """The debounce timers and the expiry sweep; runs until cancelled or closed."""
        next_sweep = trio.current_time() + self.cleanup_period
        while not self.closed:
            with trio.move_on_at(min(self._next_deadline(), next_sweep)):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            now = trio.current_time()
            self.flush_due(now)
            if now >= next_sweep:
                self.sweep(now)
                next_sweep = now + self.cleanup_period
