"""``cloudfs server``: a Cloudreve-compatible HTTP server: 4.x (``/api/v4``) or,
with ``dialect="v3"``, 3.8.3 (``/api/v3``, package ``v3``); with
``dialect="koodrive"`` a Huawei KooDrive emulator (package ``koodrive``,
docs/koodrive-emulator.md).

Serves one data directory (SQLite metadata + blob files) on Starlette over
hypercorn's trio worker.  Use :func:`serve` from trio code (it reports the
bound URL through ``task_status``), :mod:`cloudfs.server.cli` from the command
line and :mod:`cloudfs.server.testing` to run it as a subprocess in tests.

This package deliberately imports nothing from the rest of cloudfs, so it
cannot agree with the client by accident.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .common.state import DEFAULT_PASSWORD, DEFAULT_USER, ServerConfig, ServerState

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USER", "ServerConfig", "ServerState", "serve"]

log = logging.getLogger("cloudfs.server")


def _hypercorn_config(config: ServerConfig, access_log: bool) -> Any:
    from hypercorn.config import Config

    hconf = Config()
    host = f"[{config.host}]" if ":" in config.host and not config.host.startswith("[") else config.host
    hconf.bind = [f"{host}:{config.port}"]
    hconf.accesslog = logging.getLogger("cloudfs.server.access") if access_log else None
    hconf.errorlog = logging.getLogger("cloudfs.server.hypercorn")
    hconf.graceful_timeout = 5.0
    hconf.keep_alive_timeout = 30.0
    # Go's net/http keeps a connection for any number of requests; hypercorn's
    # default closes it after 1000 (a mount's downloader reconnects every 1000 reads)
    hconf.keep_alive_max_requests = 1 << 62
    hconf.h2_max_concurrent_streams = 128
    hconf.backlog = 256
    hconf.include_server_header = False  # Cloudreve (Go net/http) sends no Server header
    return hconf


async def serve(config: ServerConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED,
                shutdown_trigger: Any = None, access_log: bool = False) -> None:
    """Run the server until cancelled (or ``shutdown_trigger`` returns).

    ``task_status.started(url)`` reports ``"http://HOST:PORT"`` once listening.
    """
    from hypercorn.trio import serve as hypercorn_serve

    from .app import before_shutdown, build, open_state

    state = open_state(config)
    app, housekeeping = build(state)
    if shutdown_trigger is not None:
        shutdown_trigger = before_shutdown(state, shutdown_trigger)
    try:
        async with trio.open_nursery() as nursery:
            async def run_http(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                await hypercorn_serve(app, _hypercorn_config(config, access_log),
                                      shutdown_trigger=shutdown_trigger, task_status=task_status)
                nursery.cancel_scope.cancel()  # HTTP side shut down: stop the housekeeping too

            if housekeeping is not None:  # koodrive has none: its recycle bin keeps items until emptied
                nursery.start_soon(housekeeping)
            binds = await nursery.start(run_http)
            url = binds[0] if binds else f"http://{config.host}:{config.port}"
            task_status.started(url)
    finally:
        state.close()
