"""``cloudfs login URL`` and ``cloudfs logout URL``: keep a login for later
mounts (and systemd units, fstab) so they need no password.

Only the refresh token is stored, in the token store (a file of mode 0600
in the user's state dir); never the password.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudfs.cli import password as passwords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server URL, or a remote named in the config file")
    parser.add_argument("--user", metavar="EMAIL", help="account e-mail")
    if parser.prog.endswith("login"):
        passwords.add_arguments(parser, otherwise="else a prompt")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def resolve_remote(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL and user of the command line, filled in from a configured
    remote when ``url`` names one; the remote's ``password_file`` becomes
    this login's unless a password is given on the command line."""
    from cloudfs.cli.appkey import take_app_key
    from cloudfs.config import ConfigError, load_remote

    url, user = args.url, args.user
    if "://" not in url:
        try:
            remote = load_remote(url)
        except ConfigError as exc:
            raise SystemExit(f"cloudfs: {exc}") from None
        take_app_key(remote)
        if getattr(args, "backend", "absent") is None and remote.get("backend"):
            args.backend = str(remote["backend"])
        url = str(remote["url"])
        configured_user = remote.get("user")
        user = user or (str(configured_user) if configured_user else None)
        password_file = remote.get("password_file")
        if (password_file is not None and getattr(args, "password_file", "absent") is None
                and not getattr(args, "password_stdin", False)):
            args.password_file = Path(str(password_file))
    return url.rstrip("/"), user


def run(args: argparse.Namespace) -> int:
    from cloudfs.cli.logs import setup_logging

    setup_logging(args.verbose)
    if args.prog_name == "login":
        return login(args)
    return logout(args)


def login(args: argparse.Namespace) -> int:
    import trio

    from cloudfs.client.api import CloudreveClient
    from cloudfs.client.tokenstore import TokenStore
    from cloudfs.errors import CloudfsError

    url, user = resolve_remote(args)
    try:
        if not user:
            # standard input is the password's when --password-stdin says so
            user = input("E-mail: ").strip() if sys.stdin.isatty() and not args.password_stdin else None
            if not user:
                raise passwords.PasswordError("--user EMAIL is needed")
        password = passwords.explicit(stdin=args.password_stdin, file=args.password_file) or \
            passwords.prompt(f"Password for {user} at {url}: ")
    except passwords.PasswordError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 2
    store = TokenStore()

    def otp() -> str:
        return passwords.prompt("Two-factor code: ", instead="run cloudfs login on a terminal")

    async def main() -> None:
        # the password, not a stored login, is what this command is for; the
        # stored login is replaced only once the new one has succeeded
        client = await CloudreveClient.connect(url, email=user, password=password, otp=otp, token_store=store,
                                               resume=False)
        await client.aclose()

    try:
        trio.run(main)
    except (CloudfsError, passwords.PasswordError) as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 1
    print(f"logged in to {url} as {user}; the login is kept in {store.path}")
    return 0


def logout(args: argparse.Namespace) -> int:
    import trio

    from cloudfs.client.api import CloudreveClient
    from cloudfs.client.tokenstore import TokenStore
    from cloudfs.errors import CloudfsError

    url, user = resolve_remote(args)
    store = TokenStore()
    stored = store.load(url, user)
    if stored is None:
        print(f"cloudfs: no stored login for {url}" + (f" as {user}" if user else ""), file=sys.stderr)
        return 1

    async def revoke() -> None:
        client = await CloudreveClient.connect(url, email=stored.user, token_store=store)
        async with client:
            await client.logout()

    try:
        trio.run(revoke)
    except CloudfsError as exc:
        print(f"cloudfs: could not revoke the login on the server ({exc}); forgetting it here anyway",
              file=sys.stderr)
    store.delete(url, stored.user)
    print(f"logged out of {url} ({stored.user})")
    return 0
