"""The change feed of Cloudreve 4.11+ (``GET /api/v4/file/events``), read with httpx-sse.

:class:`ChangeFeed` keeps one subscription open and reports, through two
callbacks, the changes other clients make (:class:`Change`, paths absolute in
the drive) and its own state (:class:`FeedState`).  Cloudreve's rules a
reader has to live with:

* the server skips changes made by requests carrying the subscriber's own
  ``X-Cr-Client-Id``, so the client sends that id on every request;
* a reconnect with the same client id within 14 days is ``resumed`` and gets
  what happened meanwhile; ``subscribed`` means nothing was kept for us (a new
  id, an expired one, a restarted server), so whatever is cached may be stale;
* changes are debounced (5 s) and merged, and pushed into a 16-slot channel
  without waiting: a burst of more changed files than that loses events
  silently.  A burst that fills the channel is reported as ``overflow`` so the
  caller can re-check everything;
* the server sends ``keep-alive`` every 30 s: a stream silent for much longer
  is dead (a half-open connection), and the read timeout ends it;
* a site with the feed switched off answers 40019, a server older than 4.11
  answers HTTP 404: both are ``unavailable`` (asked again now and then).

Connection failures are retried with jittered exponential backoff; the
first attempt after a lost stream waits at least a second, so the server has
noticed the old connection is gone before the same id subscribes again.  After
a *silent* stream (half-open: the server has not noticed) the wait is one
keep-alive period longer: Cloudreve marks a client id offline when its old
stream's write fails, even if the id is already back on a new stream, which
would then hear nothing until its next reconnect.
"""

from __future__ import annotations

import enum
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import trio
from httpx_sse import EventSource, SSEError, aconnect_sse

from cloudfs.client import envelope
from cloudfs.client.http import Http, map_error
from cloudfs.errors import CloudfsError, RequestTimeout

log = logging.getLogger(__name__)

#: Cloudreve's keep-alive period
KEEPALIVE_S = 30.0
#: three missed keep-alives and the stream counts as dead
SILENCE_LIMIT_S = 95.0
#: the server's channel holds 16 events: a burst this large may have lost some
OVERFLOW_BURST = 16
#: events closer together than this belong to one burst (one debounce flush)
BURST_GAP_S = 0.5
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
#: how long to wait before asking a server without the feed again
UNAVAILABLE_RETRY_S = 900.0
FEATURE_NOT_ENABLED = 40019


class FeedState(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    DISCONNECTED = "disconnected"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "create" | "modify" | "rename" | "delete"
    file_id: str
    path: str
    new_path: str = ""  # renames only


@dataclass(frozen=True, slots=True)
class StateChange:
    state: FeedState
    #: LIVE: True when the server kept what happened while we were away ("resumed")
    resumed: bool = False
    reason: str = ""


class Unavailable(Exception):
    """The server has no feed for us (40019, or 404 before 4.11)."""


def parse_change(data: str) -> Change | None:
    try:
        raw = json.loads(data)
        kind = str(raw["type"])
        change = Change(kind, str(raw.get("file_id", "")), str(raw.get("from", "")), str(raw.get("to", "")))
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in ("create", "modify", "rename", "delete") or not change.path.startswith("/"):
        return None
    return change


class ChangeFeed:
    """One subscription to the whole drive (``cloudreve://my``), kept open by :meth:`run`."""

    def __init__(self, http: Http, *, on_change: Callable[[Change], None],
                 on_state: Callable[[StateChange], None], silence_limit_s: float = SILENCE_LIMIT_S,
                 backoff_max_s: float = BACKOFF_MAX_S, keepalive_s: float = KEEPALIVE_S) -> None:
        self.http = http
        self.on_change = on_change
        self.on_state = on_state
        self.silence_limit_s = silence_limit_s
        self.backoff_max_s = backoff_max_s
        self.keepalive_s = keepalive_s
        self.state = FeedState.CONNECTING
        self.connects = 0
        self.events_seen = 0

    def _set(self, change: StateChange) -> None:
        if change.state != self.state or change.state == FeedState.LIVE:
            log.info("change feed: %s%s", change.state.value, f" ({change.reason})" if change.reason else "")
        self.state = change.state
        self.on_state(change)

    async def run(self) -> None:
        """Forever: subscribe, deliver, reconnect.  Cancel to stop."""
        delay = BACKOFF_FIRST_S
        while True:
            live_before = self.events_seen
            try:
                await self._stream_once()
                reason = "stream ended"
            except Unavailable as exc:
                self._set(StateChange(FeedState.UNAVAILABLE, reason=str(exc)))
                await trio.sleep(UNAVAILABLE_RETRY_S)
                delay = BACKOFF_FIRST_S
                continue
            except CloudfsError as exc:
                reason = str(exc)
                silent = isinstance(exc, RequestTimeout)
            else:
                silent = False
            if self.state == FeedState.LIVE or self.events_seen != live_before:
                delay = BACKOFF_FIRST_S  # it worked for a while: start the backoff over
            self._set(StateChange(FeedState.DISCONNECTED, reason=reason))
            # After a silent (half-open) stream the server notices the loss only when its next
            # keep-alive fails, and then marks our client id offline, even if we are back on a
            # new stream by then (which would hear nothing): come back after that.
            wait = max(delay, self.keepalive_s + 5) if silent else delay
            await trio.sleep(wait * random.uniform(1.0, 1.5))
            delay = min(delay * 2, self.backoff_max_s)

    async def _stream_once(self) -> None:
        http = self.http
        url = http.api_url("/file/events")
        timeout = httpx.Timeout(http.settings.request_timeout_s, read=self.silence_limit_s)
        for renewed in (False, True):
            headers = dict(await http.auth.headers()) if http.auth is not None else {}
            self.connects += 1
            try:
                async with aconnect_sse(http.client, "GET", url, params={"uri": "cloudreve://my"},
                                        headers=headers, timeout=timeout) as source:
                    response = source.response
                    if response.status_code == 404:
                        raise Unavailable("the server has no change feed (Cloudreve before 4.11)")
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        env = envelope.of_response(response, "GET /file/events") if await response.aread() else None
                        if env is not None and env.code == envelope.LOGIN_REQUIRED and not renewed and http.auth:
                            await http.auth.rejected(headers)
                            continue
                        if env is not None and env.code == FEATURE_NOT_ENABLED:
                            raise Unavailable("the change feed is switched off on this site")
                        if env is not None:
                            env.unwrap()  # raises the typed error
                        raise CloudfsError(f"GET /file/events: HTTP {response.status_code}")
                    await self._deliver(source)
                    return
            except (httpx.HTTPError, SSEError) as exc:
                if isinstance(exc, SSEError):
                    raise CloudfsError(f"GET /file/events: {exc}") from None
                raise map_error(exc, "GET /file/events") from None
        raise CloudfsError("GET /file/events: login refused")

    async def _deliver(self, source: EventSource) -> None:
        burst = 0
        last = -1e9
        async for sse in source.aiter_sse():
            if sse.event in ("subscribed", "resumed"):
                self._set(StateChange(FeedState.LIVE, resumed=sse.event == "resumed"))
                continue
            if sse.event != "event":
                continue  # keep-alive
            change = parse_change(sse.data)
            if change is None:
                log.warning("change feed: ignoring an event we do not understand: %.200r", sse.data)
                continue
            self.events_seen += 1
            self.on_change(change)
            now = trio.current_time()
            burst = burst + 1 if now - last < BURST_GAP_S else 1
            last = now
            if burst == OVERFLOW_BURST:
                # the channel was full: later events of this flush are lost, and nothing says which
                log.info("change feed: a burst of %d events may have lost some; re-checking everything", burst)
                self._set(StateChange(FeedState.LIVE, resumed=False, reason="overflow"))
