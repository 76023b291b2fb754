"""``cloudfs server`` command line: flags -> :class:`ServerConfig` -> :func:`serve`.

Kept import-light (the CLI builds every subcommand's parser): the server
stack is imported only in :func:`run`.  Defaults are Cloudreve's: 1 GiB
capacity (default "User" group), 25 MiB chunks (default local policy), access
tokens 3600 s, refresh tokens 14 days, upload sessions 86400 s, download URLs
3600 s (v3: 600 s).  ``--dialect v3`` serves Cloudreve 3.8.3's ``/api/v3``,
``--dialect koodrive`` a KooDrive emulator (its options: :mod:`.koodrive.cli`).
On start it prints the account and ``listening on <url>`` (port 0
picks a free port).  SIGINT/SIGTERM stop it gracefully.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

DEFAULT_USER = "demo@cloudfs.local"
DEFAULT_PASSWORD = "cloudfs-demo"


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    if raw and raw[-1] in units:
        return int(float(raw[:-1]) * units[raw[-1]])
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5212, help="port (0 = pick a free one; default 5212)")
    parser.add_argument("--data", required=True, type=Path, help="data directory (SQLite + blobs)")
    parser.add_argument("--user", default=DEFAULT_USER, help=f"account e-mail (default {DEFAULT_USER})")
    parser.add_argument("--password", default=None, help=f"account password (default {DEFAULT_PASSWORD})")
    parser.add_argument("--otp-secret", default=None,
                        help="base32 TOTP secret: login then needs 2FA ('' removes it)")
    parser.add_argument("--capacity", type=_size, default=1 << 30, help="storage quota in bytes (default 1 GiB)")
    parser.add_argument("--chunk-size", type=_size, default=25 << 20, help="upload chunk size (default 25 MiB)")
    parser.add_argument("--chunk-concurrency", type=int, default=3,
                        help="chunk_concurrency advertised by the storage policy (default 3)")
    parser.add_argument("--max-file-size", type=_size, default=0,
                        help="storage policy max file size, 0 = unlimited (default)")
    parser.add_argument("--access-ttl", type=float, default=3600.0, help="access token lifetime, s (3600)")
    parser.add_argument("--refresh-ttl", type=float, default=14 * 86400.0, help="refresh token lifetime, s (14 d)")
    parser.add_argument("--upload-session-ttl", type=float, default=86400.0, help="upload session lifetime, s (86400)")
    parser.add_argument("--url-ttl", type=float, default=None,
                        help="signed download URL lifetime, s (v4: 3600, v3: 600 = download_timeout)")
    parser.add_argument("--dialect", choices=["v4", "v3", "koodrive"], default="v4",
                        help="API served: v4 (/api/v4, default), v3 (/api/v3, Cloudreve 3.8.3) or koodrive "
                             "(Huawei KooDrive /koodrive/ose/v1); a data dir keeps the dialect it was created with")
    parser.add_argument("--debug", action="store_true",
                        help="v3 only: gin debug mode, envelopes carry the raw 'error' text")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    from .koodrive.cli import add_arguments as add_koodrive_arguments

    add_koodrive_arguments(parser)
    faults = parser.add_argument_group("fault injection (tests only; needs --faults)")
    faults.add_argument("--faults", action="store_true", help="enable fault injection and /_cloudfs/faults")
    faults.add_argument("--fault-latency", type=float, help="seconds added to matching requests")
    faults.add_argument("--fault-error-rate", type=float, help="probability of an HTTP error answer")
    faults.add_argument("--fault-error-status", type=int, help="status of injected errors (default 500)")
    faults.add_argument("--fault-drop-rate", type=float, help="probability of dropping the connection")
    faults.add_argument("--fault-drop-after", type=int, help="bytes passed before a drop (default 0)")
    faults.add_argument("--fault-drop-target", choices=["auto", "request", "response"],
                        help="cut the request or the response body (default auto)")
    faults.add_argument("--fault-path", help="regex on the request path selecting requests")
    faults.add_argument("--fault-count", type=int, help="only the next N matching requests")
    faults.add_argument("--fault-seed", type=int, help="random seed for the rates")
    faults.add_argument("--fault-capacity", type=_size, help="override the quota (low-capacity fault)")


_FAULT_FLAGS = {"fault_latency": "latency_s", "fault_error_rate": "error_rate",
                "fault_error_status": "error_status", "fault_drop_rate": "drop_rate",
                "fault_drop_after": "drop_after_bytes", "fault_drop_target": "drop_target",
                "fault_path": "path_regex", "fault_count": "count", "fault_seed": "seed",
                "fault_capacity": "capacity"}


def config_from_args(args: argparse.Namespace):  # -> ServerConfig (import kept lazy)
    from .state import ServerConfig

    settings = {name: getattr(args, flag) for flag, name in _FAULT_FLAGS.items()
                if getattr(args, flag, None) is not None}
    if settings and not args.faults:
        raise SystemExit("cloudfs server: --fault-* options need --faults")
    return ServerConfig(
        data_dir=args.data, host=args.host, port=args.port, user=args.user,
        password=args.password if args.password is not None else DEFAULT_PASSWORD,
        password_explicit=args.password is not None, otp_secret=args.otp_secret,
        capacity=args.capacity, chunk_size=args.chunk_size, chunk_concurrency=args.chunk_concurrency,
        max_file_size=args.max_file_size, access_ttl=args.access_ttl, refresh_ttl=args.refresh_ttl,
        upload_session_ttl=args.upload_session_ttl,
        url_ttl=args.url_ttl if args.url_ttl is not None else (600.0 if args.dialect == "v3" else 3600.0),
        faults=args.faults, fault_settings=settings, dialect=args.dialect, debug=args.debug,
        dialect_options=dialect_options(args))


def dialect_options(args: argparse.Namespace) -> dict[str, object]:
    if args.dialect == "koodrive":
        from .koodrive.cli import options_from_args

        return options_from_args(args)
    return {}


def run(args: argparse.Namespace) -> int:
    import trio

    from . import serve
    from .auth import valid_totp_secret

    logging.basicConfig(level=logging.INFO if args.access_log else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = config_from_args(args)
    if config.otp_secret and not valid_totp_secret(config.otp_secret):
        print("cloudfs server: --otp-secret must be base32", file=sys.stderr)
        return 2
    if config.chunk_size <= 0:
        print("cloudfs server: --chunk-size must be positive", file=sys.stderr)
        return 2

    async def wait_for_signal() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(lambda task_status: serve(
                config, task_status=task_status, shutdown_trigger=wait_for_signal,
                access_log=args.access_log))
            password = "(as given)" if config.password_explicit else f"{config.password} (default)"
            print(f"cloudfs server: data {Path(config.data_dir).resolve()}", flush=True)
            print(f"cloudfs server: account {config.user} password {password}", flush=True)
            if config.dialect == "koodrive":
                from .koodrive.cli import describe

                for line in describe(config):
                    print(f"cloudfs server: {line}", flush=True)
            if config.faults:
                print("cloudfs server: fault injection enabled at /_cloudfs/faults", flush=True)
            print(f"cloudfs server: listening on {url}", flush=True)

    from .state import DataDirBusy, DialectMismatch

    busy: list[str] = []
    try:
        trio.run(main)
    except* (DataDirBusy, DialectMismatch) as group:  # raised from inside the nursery
        busy += [str(exc) for exc in group.exceptions]
    if busy:
        print(f"cloudfs server: {busy[0]}", file=sys.stderr)
        return 1
    return 0
