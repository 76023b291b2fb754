"""A v4 drive's state and one request's view of it.

:class:`V4State` adds to the common :class:`~cloudfs.server.common.state.ServerState`
what only Cloudreve 4 keeps: path locks, the signed-URL cache and the upload
sessions (restored with their locks when the server starts), and the change
feed's hub.  :class:`Ctx` is
one request's view: correlation id, current user (None = anonymous), base URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..common.db import User
from ..common.state import ServerConfig, ServerState
from .eventhub import EventHub
from .locks import LockSystem
from .upload_sessions import UploadSessions

VERSION = "4.14.0"  # what a source build of Cloudreve 4.18.0 reports from /site/ping


class V4State(ServerState):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.locks = LockSystem()
        self.url_cache: dict[tuple[Any, ...], tuple[str, float, float]] = {}  # url, expiry, reuse until
        self.upload_sessions = UploadSessions(self.db, self.store, self.locks)
        #: the change feed's hub (its timers run in the v4 housekeeping)
        self.events = EventHub(config.events_debounce, config.events_max_age)


@dataclass
class Ctx:
    state: V4State
    user: User | None
    cid: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    #: X-Cr-Client-Id of the request ("" if none): its changes are not echoed to that client's feed
    client_id: str = ""
