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

from cloudfs.cli import account


def add_arguments(parser: argparse.ArgumentParser) -> None:
    account.add_arguments(parser)
    parser.add_argument("--empty", action="store_true",
                        help="delete everything in the recycle bin for good (asks first on a terminal)")
    parser.add_argument("-y", "--yes", action="store_true", help="empty without asking")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    import trio

    from cloudfs.cli.status import human as human_size
    from cloudfs.client.models import Capacity, TrashSummary
    from cloudfs.errors import CloudfsError

    who = account.Account.of_command(args)
    if who is None:
        return 2
    url = who.url
    if args.empty and not args.yes and not sys.stdin.isatty():
        print("cloudfs: emptying the recycle bin deletes for good: add --yes to do it without a terminal",
              file=sys.stderr)
        return 2

    async def inspect() -> tuple[TrashSummary | None, Capacity]:
        async with await who.connect() as client:
            return await client.trash(), await client.capacity()

    async def empty() -> tuple[TrashSummary | None, Capacity]:
        async with await who.connect() as client:
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
            emptied, capacity = trio.run(empty)
            after = emptied or TrashSummary(0, 0)
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
