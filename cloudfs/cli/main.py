"""The ``cloudfs`` command: parses the subcommand and hands over to its module.

Each subcommand lives in a module of its own exposing ``add_arguments(parser)``
and ``run(args) -> int``; they are imported lazily so that ``cloudfs server``
does not load FUSE and ``cloudfs mount`` does not load the server stack.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cloudfs.cli.argparsing import CommandParser
from cloudfs.cli.version import VersionAction

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "mount": ("cloudfs.cli.mount", "mount a Cloudreve drive"),
    "umount": ("cloudfs.cli.umount", "unmount, after pending uploads finish"),
    "status": ("cloudfs.cli.status", "show mounts, capacity, cache and pending uploads"),
    "demo": ("cloudfs.cli.demo", "mount a demo drive served by the bundled server"),
    "login": ("cloudfs.cli.login", "log in once and keep the login for later mounts"),
    "logout": ("cloudfs.cli.login", "revoke and forget a stored login"),
    "pin": ("cloudfs.cli.pin", "keep files or folders of a mount available offline"),
    "unpin": ("cloudfs.cli.pin", "stop keeping files or folders for offline use"),
    "quota": ("cloudfs.cli.quota", "show quota and use (KooDrive: per user, per quota tier, the tenant)"),
    "trash": ("cloudfs.cli.trash", "show the recycle bin (it counts against the quota) and empty it"),
    "server": ("cloudfs.server.cli", "run the bundled Cloudreve-compatible server"),
    "completion": ("cloudfs.cli.completion", "print the bash or zsh completion script"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only``: just that subcommand's part (its
    module alone is imported: ``cloudfs umount``, run as a copy finishes,
    then starts in a fraction of the time, and takes no CPU from the
    upload it waits for)."""
    parser = argparse.ArgumentParser(
        prog="cloudfs", description="Mount a Cloudreve cloud drive as a local directory."
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True,
                                parser_class=CommandParser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(run=module.run, prog_name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # a known subcommand first: only its module is needed (help and mistakes get the whole parser)
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    args.argv = argv
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (cloudfs status | head): quietly, as other tools do;
        # stdout goes to /dev/null so the flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
