"""``GET /api/v4/file/events``: the change feed as a ``text/event-stream`` (``service/explorer/events.go``).

Checks run in Cloudreve's order: login (401), the site switch (40019 "This
feature is not enabled"; or a plain 404 when posing as a server older than
4.11), the ``uri`` binding, the URI must be a listable folder (40001
"Requested uri not available", code inherited from the cause), then the
``X-Cr-Client-Id`` header (40001 "Client ID is required" / "Invalid client
ID", a UUID as gofrs/uuid parses it).

Frames are what gin-contrib/sse 1.1 writes for ``c.SSEvent``: no space after
the colon, ``\\n`` line ends; ``subscribed``/``resumed``/``keep-alive`` carry
Go's ``fmt.Sprint(nil)`` = ``<nil>``, ``event`` carries the JSON of one event
(Go's HTML-safe escaping, then the encoder's newline and the blank line).
sse-starlette streams them and watches for the client going away; the
subscriber is then marked offline so a reconnect with the same client id
resumes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from . import errors as E
from . import fileops
from ..common.binding import F, bind_form
from ..common.goformat import go_json, plain_404
from .eventhub import Event, EventHub, HubClosed, Subscriber, Topic
from .navigator import walk
from .state import Ctx

log = logging.getLogger("cloudfs.server.events")

EVENTS = [F("uri", "Uri", required=True)]
_HEX = "[0-9a-fA-F]"
_CANONICAL = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_HASHLIKE = f"{_HEX}{{32}}"
# the text forms gofrs/uuid's FromString accepts: canonical, hash-like, each braced or urn:uuid:-prefixed
_UUID_FORMS = re.compile(rf"(?:urn:uuid:)?(?:{_CANONICAL}|{_HASHLIKE})|\{{(?:{_CANONICAL}|{_HASHLIKE})\}}")


class GinFrame(ServerSentEvent):
    """One frame exactly as gin's ``c.SSEvent(name, data)`` writes it."""

    def __init__(self, name: str, payload: bytes | None = None) -> None:
        super().__init__(event=name)
        self.payload = payload

    def encode(self) -> bytes:
        if self.payload is None:
            return b"event:" + (self.event or "").encode() + b"\ndata:<nil>\n\n"
        return b"event:" + (self.event or "").encode() + b"\ndata:" + self.payload + b"\n\n"


def event_frame(event: Event) -> GinFrame:
    return GinFrame("event", go_json(event.to_json()))


def valid_client_id(value: str) -> bool:
    return _UUID_FORMS.fullmatch(value) is not None


def _bind_uri(request: Request) -> str:
    params = {k: request.query_params.getlist(k)[0] for k in request.query_params}
    return str(bind_form(params, EVENTS)["uri"])


def _topic(ctx: Ctx, raw_uri: str) -> Topic:
    """``m.List(uri, page size 1)``: the folder must be listable; its id is the topic."""
    uri = fileops.parse_uri(raw_uri, "Unknown uri")
    try:
        fileops.list_files(ctx, {"uri": raw_uri, "page_size": 1, "order_by": "", "order_direction": "",
                                 "next_page_token": ""})
        parent = walk(ctx, uri)
    except (E.AppError, E.Wrapped, E.PlainError) as exc:
        raise E.AppError(E.PARAM_ERR, "Requested uri not available", E.find_app_error(exc) or exc) from None
    assert ctx.user is not None
    return parent.row.id if parent is not None else ("trash", ctx.user.id)


async def file_events(ctx: Ctx, request: Request) -> Response:
    cfg = ctx.state.config
    hub = ctx.state.events
    if cfg.events == "absent" or hub is None:
        return plain_404()  # the route does not exist before 4.11
    if ctx.user is None:
        raise E.login_required()
    if cfg.events != "on":
        raise E.AppError(E.FEATURE_NOT_ENABLED, "This feature is not enabled")
    topic = _topic(ctx, _bind_uri(request))
    client_id = ctx.client_id
    if client_id == "":
        raise E.AppError(E.PARAM_ERR, "Client ID is required")
    if not valid_client_id(client_id):
        raise E.AppError(E.PARAM_ERR, "Invalid client ID", f"uuid: incorrect UUID format in string {client_id!r}")
    try:
        sub, resumed = hub.subscribe(topic, client_id, ctx.user.id)
    except HubClosed as exc:
        raise E.AppError(E.INTERNAL_SETTING, "Failed to subscribe to events", str(exc)) from None
    log.info("client %s subscribed to %s (resumed=%s)", client_id, topic, resumed)
    return EventSourceResponse(
        _frames(hub, topic, sub, resumed),
        media_type="text/event-stream;charset=utf-8",
        headers={"Cache-Control": "no-cache"},
        ping=cfg.events_keepalive,  # Cloudreve's 30 s keep-alive ticker
        ping_message_factory=lambda: GinFrame("keep-alive"),
        # also when the stream ends before its first frame (the generator's finally never runs then)
        background=BackgroundTask(hub.unsubscribe, topic, client_id),
    )


async def _frames(hub: EventHub, topic: Topic, sub: Subscriber, resumed: bool) -> AsyncIterator[GinFrame]:
    try:
        yield GinFrame("resumed" if resumed else "subscribed")
        async for event in sub.receive:  # ends when the hub closes the subscriber
            yield event_frame(event)
    finally:
        # the client went away (or the send failed): keep the subscription for a resume
        hub.unsubscribe(topic, sub.client_id)
