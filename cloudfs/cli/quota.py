"""``cloudfs quota URL [--by-quota] [--users ID,...] [--json]``: quota and use.

On KooDrive, the tenant view for administrators: usage by user (50 ids a
call, batched; default: the logged-in user), usage by quota tier
(``--by-quota``, paged) and the tenant overview.  On Cloudreve, the one
logged-in user's capacity (v4 ``/user/capacity``, v3 ``/user/storage``).
Sizes are bytes in JSON and human sizes in the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from cloudfs.cli import account

if TYPE_CHECKING:
    from cloudfs.client.models import UsageReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    account.add_arguments(parser)
    parser.add_argument("--users", metavar="ID,...", default="",
                        help="KooDrive: the user ids to report (default: the logged-in user)")
    parser.add_argument("--by-quota", action="store_true", help="KooDrive: the tenant's use per quota tier")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (sizes in bytes)")


def table(report: UsageReport) -> str:
    from cloudfs.cli.status import human

    lines = [f"{'USER':<22} {'QUOTA':>10} {'USED':>10} {'FREE':>10} {'USE%':>5}"]
    for user in report.users:
        share = f"{100 * user.used / user.quota:.0f}%" if user.quota else "-"
        lines.append(f"{user.user_id or '(you)':<22} {human(user.quota):>10} {human(user.used):>10} "
                     f"{human(max(user.quota - user.used, 0)):>10} {share:>5}")
    if report.tiers is not None:
        lines += ["", f"{'QUOTA TIER':<12} {'ALLOCATED':>11} {'CAPACITY':>11} {'USED':>11}"]
        lines += [f"{human(t.quota):<12} {human(t.allocated):>11} {human(t.capacity):>11} {human(t.used):>11}"
                  for t in report.tiers]
    if report.overview is not None:
        o = report.overview
        lines += ["", f"tenant: {human(o.allocated)} allocated, {human(o.capacity)} capacity, {human(o.used)} used"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import trio

    from cloudfs.errors import CloudfsError

    who = account.Account.of_command(args)
    if who is None:
        return 2
    ids = [i.strip() for i in args.users.split(",") if i.strip()]

    async def fetch() -> UsageReport:
        async with await who.connect() as client:
            return await client.usage(users=ids, by_quota=args.by_quota)

    try:
        report = trio.run(fetch)
    except CloudfsError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"url": who.url, **dataclasses.asdict(report)}) if args.json else table(report))
    return 0
