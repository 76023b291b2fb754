"""``cloudfs trash URL [--empty]``: what the recycle bin holds, and a way to
empty it.

Deleted files go to the server's recycle bin (the mount's default
``delete=trash``) and still count against the quota, so a full drive stays
full after ``rm``.  This is the way out without the web interface.  Servers
without a recycle bin (Cloudreve 3) delete for good; there is nothing to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cloudfs.cli import password as passwords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server URL, or a remote named in the config file")
    parser.add_argument("--user", metavar="EMAIL", help="account e-mail (default: the stored login's)")
    parser.add_argument("--empty", action="store_true",
                        help="delete everything in the recycle bin for good (asks first on a terminal)")
    parser.add_argument("-y", "--yes", action="store_true", help="empty without asking")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    passwords.add_arguments(parser, otherwise="else the stored login")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args: argparse.Namespace) -> int:
    import trio

    from cloudfs.cli.logs import setup_logging
    from cloudfs.cli.login import resolve_remote
    from cloudfs.cli.status import human as human_size
    from cloudfs.client.api import CloudreveClient
    from cloudfs.client.models import Capacity, TrashSummary
    from cloudfs.client.tokenstore import TokenStore
    from cloudfs.errors import CloudfsError

    setup_logging(args.verbose)
    url, user = resolve_remote(args)
    try:
        password = passwords.explicit(stdin=args.password_stdin, file=args.password_file)
    except passwords.PasswordError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 2
    store = TokenStore()
    if password is None and store.load(url, user) is None:
        print(f"cloudfs: no stored login for {url}: run cloudfs login {args.url}, or give a password "
              f"({passwords.HOW})", file=sys.stderr)
        return 2
    if password is not None and not user:
        print("cloudfs: a password needs an account: pass --user EMAIL", file=sys.stderr)
        return 2
    if args.empty and not args.yes and not args.json:
        if not sys.stdin.isatty():
            print("cloudfs: emptying the recycle bin deletes for good: add --yes to do it without a terminal",
                  file=sys.stderr)
            return 2

    async def connect() -> CloudreveClient:
        # a password given logs in with it and stores nothing (cloudfs login is for that)
        if password is not None:
            return await CloudreveClient.connect(url, email=user, password=password, resume=False)
        return await CloudreveClient.connect(url, email=user, token_store=store)

    async def inspect() -> tuple[TrashSummary | None, Capacity]:
        async with await connect() as client:
            return await client.trash(), await client.capacity()

    async def empty() -> tuple[TrashSummary | None, Capacity]:
        async with await connect() as client:
            await client.empty_trash()
            return await client.trash(), await client.capacity()

    try:
        before, capacity = trio.run(inspect)
        if before is None:
            print(f"{url}: this server has no recycle bin; deleted files are gone at once and do not count")
            return 0
        after = before
        if args.empty and before.items:
            if not args.yes and input(f"delete {before.items} items ({human_size(before.size)}) in the "
                                      f"recycle bin for good? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
            freed_from = capacity.used
            after, capacity = trio.run(empty)
            after = after or TrashSummary(0, 0)
            if not args.json:
                print(f"emptied the recycle bin: {before.items - after.items} items, "
                      f"{human_size(max(freed_from - capacity.used, 0))} freed")
    except CloudfsError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"url": url, "items": after.items, "size": after.size,
                          "emptied": before.items - after.items if args.empty else 0,
                          "used": capacity.used, "total": capacity.total}))
    elif not args.empty or not before.items:
        print(f"{url}: the recycle bin holds {after.items} items ({human_size(after.size)} of files), "
              f"counted in the {human_size(capacity.used)} used of {human_size(capacity.total)}")
        if after.items:
            print(f"to free that space: cloudfs trash {args.url} --empty")
    return 0
