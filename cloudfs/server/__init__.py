"""``cloudfs server``: a Cloudreve-compatible HTTP server: 4.x (``/api/v4``) or,
with ``dialect="v3"``, 3.8.3 (``/api/v3``, modules ``v3*.py``); with
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

from .state import DEFAULT_PASSWORD, DEFAULT_USER, ServerConfig, ServerState

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
    hconf.h2_max_concurrent_streams = 128
    hconf.backlog = 256
    hconf.include_server_header = False  # Cloudreve (Go net/http) sends no Server header
    return hconf


async def _collect_trash_forever(state: ServerState, period: float = 600.0) -> None:
    """Cloudreve's trash collector cron: purge items past their retention (7 days)."""
    from .fileops import collect_trash

    while True:
        try:
            collect_trash(state)
        except Exception:  # a failed sweep must not take the server down
            log.exception("trash collection failed")
        await trio.sleep(period)


async def serve(config: ServerConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED,
                shutdown_trigger: Any = None, access_log: bool = False) -> None:
    """Run the server until cancelled (or ``shutdown_trigger`` returns).

    ``task_status.started(url)`` reports ``"http://HOST:PORT"`` once listening.
    """
    from hypercorn.trio import serve as hypercorn_serve

    from .app import wrap_app
    from .faults import FaultRule, FaultState

    state = ServerState(config)
    if config.faults:
        state.faults = FaultState()
        settings = dict(config.fault_settings)
        capacity = settings.pop("capacity", None)
        if capacity is not None:
            state.capacity_override = int(capacity)
        if settings:
            state.faults.set(FaultRule.from_json(settings))
    app = wrap_app(state)
    try:
        async with trio.open_nursery() as nursery:
            async def run_http(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                await hypercorn_serve(app, _hypercorn_config(config, access_log),
                                      shutdown_trigger=shutdown_trigger, task_status=task_status)
                nursery.cancel_scope.cancel()  # HTTP side shut down: stop the housekeeping too

            if config.dialect == "v3":
                from .v3uploads import collect_sessions_forever

                nursery.start_soon(collect_sessions_forever, state)
            elif config.dialect == "koodrive":
                pass  # no housekeeping: the recycle bin keeps items until emptied
            else:
                nursery.start_soon(_collect_trash_forever, state)
            binds = await nursery.start(run_http)
            url = binds[0] if binds else f"http://{config.host}:{config.port}"
            task_status.started(url)
    finally:
        state.close()
