"""What :func:`cloudfs.server.serve` runs for one data directory, whichever the dialect.

:func:`open_state` opens the directory for the configured dialect (v4 keeps
more state than the common one), :func:`build` puts together the dialect's app
(with the fault-control channel and the fault injector in front of it when
``--faults`` is on, behind :class:`DrainBody`) and its housekeeping loop.
Everything a dialect needs is handed to it when it is built.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from .common.state import ServerConfig, ServerState


def open_state(config: ServerConfig) -> ServerState:
    """The data directory, opened for the dialect the configuration asks for."""
    if config.dialect == "v4":
        from .v4.state import V4State

        return V4State(config)
    return ServerState(config)  # v3, koodrive (an unknown dialect is refused there)


def build(state: ServerState) -> tuple[Any, Callable[[], Awaitable[None]] | None]:
    """The ASGI app to serve and the dialect's housekeeping loop to run beside it (None: none)."""
    faults = None
    if state.config.faults:
        from .testing.faults import FaultState, control_routes

        faults = FaultState.configured(state)
    housekeeping: Callable[[], Awaitable[None]] | None
    if state.config.dialect == "koodrive":
        from .koodrive.app import build_koodrive_app
        from .koodrive.runtime import KooRuntime

        shared = control_routes(state, faults) if faults is not None else []
        app: Any = build_koodrive_app(KooRuntime(state), faults, shared)
        housekeeping = None  # the recycle bin keeps items until emptied
    elif state.config.dialect == "v3":
        from .v3.app import build_v3_app
        from .v3.runtime import V3Runtime
        from .v3.uploads import collect_sessions_forever

        rt = V3Runtime(state)
        extra = control_routes(state, faults, rt.sessions.expire_all) if faults is not None else []
        app = build_v3_app(rt, extra)
        housekeeping = functools.partial(collect_sessions_forever, rt)
    else:
        from .v4.app import build_app
        from .v4.app import housekeeping as v4_housekeeping
        from .v4.state import V4State

        assert isinstance(state, V4State)
        extra = control_routes(state, faults) if faults is not None else []
        app = build_app(state, extra)
        housekeeping = functools.partial(v4_housekeeping, state)
    if faults is not None:
        from .testing.faults import FaultMiddleware

        app = FaultMiddleware(app, faults)
    return DrainBody(app), housekeeping


def before_shutdown(state: ServerState, trigger: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """``trigger``, then what must end before hypercorn can: it waits for open
    requests, and a v4 change-feed stream never ends on its own."""
    events = getattr(state, "events", None)  # V4State's hub
    if events is None:
        return trigger

    async def wrapped() -> None:
        await trigger()
        events.close()

    return wrapped


class DrainBody:
    """Read what is left of a request body before the answer ends.

    Hypercorn hands body chunks to the app through a bounded queue; if an app
    answers without reading a large body, hypercorn blocks on that queue and the
    connection hangs.  And once an answer is complete, hypercorn closes a
    connection whose request body has not all arrived: a client still sending
    it (a refused chunk, its body a packet behind the headers) then sees the
    connection reset instead of the answer.  Cloudreve drains such bodies
    (``request.BlackHole``) and keeps the connection; so does this: the last
    piece of an answer waits until the body is read.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        finished = False

        async def tracked() -> dict[str, Any]:
            nonlocal finished
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def drain() -> None:
            while not finished:
                await tracked()

        async def send_after_body(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await drain()
            await send(message)

        try:
            await self.app(scope, tracked, send_after_body)
        finally:
            await drain()
