"""Where a command's password comes from: ``--password-stdin``,
``--password-file``, ``CLOUDFS_PASSWORD``, or a prompt on the terminal.

A password given in any of the first three ways is *explicit*: it is the
one used, whatever login is stored (a wrong one must fail, not be silently
replaced by a stored login).  Each problem is a :class:`PasswordError`
whose text is the one line the user sees.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

ENV = "CLOUDFS_PASSWORD"


class PasswordError(Exception):
    """No usable password where one was promised (an empty file, nothing on stdin)."""


def from_stdin(stream: TextIO | None = None) -> str:
    """One line of standard input (docker's ``--password-stdin``), without its line end."""
    stream = stream if stream is not None else sys.stdin
    if stream is None or stream.closed:
        raise PasswordError("--password-stdin: standard input is closed")
    if stream.isatty():
        # a person at a terminal: read without echoing it
        line = getpass.getpass("Password: ", stream=sys.stderr)
    else:
        line = stream.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise PasswordError("--password-stdin: no password on standard input")
    return password


def from_file(path: Path) -> str:
    """The content of ``path``, without its final line end."""
    try:
        password = Path(path).expanduser().read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordError(f"cannot read the password file {path}: {exc}") from None
    if not password:
        raise PasswordError(f"the password file {path} is empty")
    return password


def explicit(*, stdin: bool = False, file: Path | None = None) -> str | None:
    """The password given on purpose, in order: standard input, a file, the
    environment; None if none was."""
    if stdin:
        return from_stdin()
    if file is not None:
        return from_file(file)
    return os.environ.get(ENV) or None


def add_arguments(parser: argparse.ArgumentParser, *, otherwise: str) -> None:
    """``--password-stdin`` and ``--password-file``, one or the other;
    ``otherwise`` says where the password comes from without them."""
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    given.add_argument("--password-file", type=Path, metavar="FILE",
                       help=f"read the password from FILE (else {ENV}, {otherwise})")


#: what to do instead of typing a password, for the error where no terminal is
HOW = f"use --password-stdin, --password-file or {ENV}"


def prompt(text: str, *, instead: str = HOW) -> str:
    """Ask on the terminal without echoing; a clear error where there is
    none (a script, a unit), saying what to do ``instead``."""
    if not sys.stdin.isatty():
        raise PasswordError(f"{text.strip(': ')} needed, but there is no terminal to ask on ({instead})")
    return getpass.getpass(text)
