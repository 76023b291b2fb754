"""``cloudfs completion bash|zsh``: the shell completion script, generated
from the argument parser (by shtab), so it always matches the installed
commands.  ``make install`` installs the same scripts; this command is for
installs that do not place them (pipx, pip --user)::

    cloudfs completion bash > ~/.local/share/bash-completion/completions/cloudfs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHELLS = ("bash", "zsh")
#: path arguments that name a directory; any other ``Path`` argument is a file
DIRECTORY_DESTS = {"mountpoint", "cache_dir", "data"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to print the completion script for")


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    """Tell shtab which arguments complete as files or directories.  Done here,
    from the arguments' types, so the subcommand modules need not know about
    completion."""
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.type is Path or action.dest in DIRECTORY_DESTS:
            # (a mount's directory may also be given as a remote's name: directories still help)
            directory = action.dest in DIRECTORY_DESTS or action.metavar == "DIR"
            # shtab reads this attribute it adds to argparse's actions (not in typeshed's Action)
            action.complete = shtab.DIRECTORY if directory else shtab.FILE  # type: ignore[attr-defined]


def script(shell: str) -> str:
    import shtab

    from cloudfs.cli.main import build_parser

    parser = build_parser()
    _mark_paths(parser)
    return str(shtab.complete(parser, shell=shell))


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0
