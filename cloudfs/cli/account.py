"""The account a one-shot command (``trash``, ``quota``) acts as: its
arguments, and the connection they describe.

A password given (``--password-stdin``, ``--password-file``,
``CLOUDFS_PASSWORD``) logs in with it and stores nothing (``cloudfs login``
is for that); otherwise the stored login of the URL and account is used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cloudfs.cli import password as passwords

if TYPE_CHECKING:
    from cloudfs.client.api import Client


class AccountError(Exception):
    """Bad or missing input: one line for the user, exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server URL, or a remote named in the config file")
    parser.add_argument("--user", metavar="EMAIL", help="account to log in as (default: the stored login's)")
    parser.add_argument("--backend", metavar="NAME", help="the server's kind: cloudreve or koodrive (default: detected)")
    passwords.add_arguments(parser, otherwise="else the stored login")
    parser.add_argument("-v", "--verbose", action="count", default=0)


@dataclass(frozen=True)
class Account:
    url: str
    user: str | None
    backend: str | None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Account:
        from cloudfs.cli.login import resolve_remote

        url, user = resolve_remote(args)
        try:
            password = passwords.explicit(stdin=args.password_stdin, file=args.password_file)
        except passwords.PasswordError as exc:
            raise AccountError(str(exc)) from None
        if password is not None and not user:
            raise AccountError("a password needs an account: pass --user EMAIL")
        return cls(url, user, args.backend, password)

    @classmethod
    def of_command(cls, args: argparse.Namespace) -> Account | None:
        """What a command starts with: logging set up as asked, and the
        account its arguments name; None (said on standard error, exit
        status 2) if they name none."""
        import sys

        from cloudfs.cli.logs import setup_logging

        setup_logging(args.verbose)
        try:
            return cls.from_args(args)
        except AccountError as exc:
            print(f"cloudfs: {exc}", file=sys.stderr)
            return None

    async def connect(self) -> Client:
        from cloudfs.client.api import Client
        from cloudfs.client.tokenstore import TokenStore

        from cloudfs.errors import AuthenticationError

        if self.password is not None:
            return await Client.connect(self.url, email=self.user, password=self.password, resume=False,
                                        backend=self.backend)
        try:
            return await Client.connect(self.url, email=self.user, token_store=TokenStore(), backend=self.backend)
        except AuthenticationError as exc:
            raise AuthenticationError(f"{exc}: run cloudfs login {self.url}, or give a password "
                                      f"({passwords.HOW})") from None
