"""Command-line options of ``cloudfs server --dialect koodrive`` (import-light:
the server CLI adds them to its parser)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("koodrive dialect")
    group.add_argument("--app-id", default=None, help="enterprise AppId accepted for HMAC app auth "
                                                      "(default cloudfs-demo-app)")
    group.add_argument("--app-secret", default=None, help="its AppSecret (default cloudfs-demo-app-secret)")
    group.add_argument("--kd-switch", action="append", default=[], metavar="NAME=VALUE",
                       help="set a named assumption or test switch (docs/koodrive-emulator.md); repeatable")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from .switches import Switches, parse_assignments

    try:
        switches = parse_assignments(args.kd_switch)
        if getattr(args, "url_ttl", None) is not None:  # the shared --url-ttl, unless a switch says otherwise
            switches.setdefault("url_ttl", str(args.url_ttl))
        Switches().update(switches)  # fail at start on a bad name or value
    except ValueError as exc:
        raise SystemExit(f"cloudfs server: {exc}") from None
    return {"app_id": args.app_id, "app_secret": args.app_secret, "switches": switches}


def describe(config: Any) -> list[str]:
    from .runtime import DEFAULT_APP_ID, DEFAULT_APP_SECRET

    from ..db import DB_NAME, connect

    options = config.dialect_options
    secret = "(as given)" if options.get("app_secret") else f"{DEFAULT_APP_SECRET} (default)"
    conn = connect(Path(config.data_dir) / DB_NAME)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='kd_user_id'").fetchone()
    finally:
        conn.close()
    return [f"koodrive userId {row[0] if row else '?'}",
            f"koodrive app {options.get('app_id') or DEFAULT_APP_ID} secret {secret}"]
