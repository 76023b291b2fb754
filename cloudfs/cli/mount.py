"""``cloudfs mount URL MOUNTPOINT``: check, log in, mount, and (by default) go
to the background once the mount is ready, as sshfs does.

The background process is this same command re-run with ``--foreground``
in a new session; it reports "ready" or the error that stopped it through a
pipe, so the command the user typed fails with that error and a non-zero
exit, before anything is mounted.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from cloudfs.cli import password as passwords
from cloudfs.cli.appkey import needs_no_password, take_app_key
from cloudfs.cli.logs import mount_log_file
from cloudfs.config import ConfigError, MountSettings, load_remote, parse_size

log = logging.getLogger(__name__)

# -o options cloudfs understands (besides the plain FUSE ones below)
_VALUE_OPTIONS: dict[str, Callable[[str], object]] = {
    "uid": int, "gid": int, "umask": lambda v: int(v, 8),
    "metadata_ttl": float, "negative_ttl": float, "timeout": float,
    "cache_size": parse_size, "fsync": str, "upload_delay": float, "max_uploads": int,
    "readahead_max": parse_size, "dirty_threshold": parse_size, "delete": str, "user": str,
    "cache_dir": Path, "events": str, "events_ttl": float,
}
_FLAG_OPTIONS = {"ro", "rw", "allow_other", "nonempty", "default_permissions", "noatime", "atime",
                 "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto", "_netdev", "user", "users"}
#: options passed through to the kernel as they are
_FUSE_PASSTHROUGH = {"dev", "nodev", "suid", "nosuid", "exec", "noexec"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="Cloudreve server URL (e.g. https://drive.example.com) or a remote "
                                    "named in the config file")
    parser.add_argument("mountpoint", type=Path, nargs="?",
                        help="empty directory to mount on (default: the remote's configured mountpoint)")
    add_mount_options(parser)


def add_mount_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", metavar="EMAIL", help="account e-mail (KooDrive: the account, or the user id "
                        "an app key or a pasted token acts for)")
    parser.add_argument("--backend", metavar="NAME", help="the server's kind: cloudreve or koodrive (default: detected)")
    passwords.add_arguments(parser, otherwise="the stored login, or a prompt")
    parser.add_argument("--store-login", action="store_true",
                        help="keep this password login for later mounts, as cloudfs login does")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache and staging dir for this account")
    parser.add_argument("--cache-size", type=parse_size, metavar="SIZE", help="read cache cap, e.g. 2G (default 2G)")
    parser.add_argument("-f", "--foreground", action="store_true", help="stay attached and log to stderr")
    parser.add_argument("--read-only", action="store_true", help="refuse every change (EROFS)")
    parser.add_argument("--allow-other", action="store_true",
                        help="let other users access the mount (needs user_allow_other in /etc/fuse.conf)")
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                        help="comma-separated: uid=,gid=,umask=,metadata_ttl=,timeout=,fsync=remote|local,"
                             "delete=trash|permanent,upload_delay=,max_uploads=, events=auto|off,events_ttl=, "
                             "nonempty,ro,allow_other")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    # internal: used by the background process
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--password-pipe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", type=Path, help=argparse.SUPPRESS)


class UsageError(Exception):
    pass


def parse_options(option_args: list[str]) -> tuple[dict[str, object], set[str]]:
    values: dict[str, object] = {}
    flags: set[str] = set()
    for group in option_args:
        for item in filter(None, (part.strip() for part in group.split(","))):
            key, sep, raw = item.partition("=")
            if sep:
                convert = _VALUE_OPTIONS.get(key)
                if convert is None:
                    raise UsageError(f"unknown mount option {key!r}")
                try:
                    values[key] = convert(raw)
                except ValueError as exc:
                    raise UsageError(f"bad value for mount option {key}: {raw!r} ({exc})") from None
            elif item in _FLAG_OPTIONS:
                flags.add(item)
            else:
                raise UsageError(f"unknown mount option {item!r}")
    return values, flags


def settings_from_args(args: argparse.Namespace) -> tuple[MountSettings, set[str]]:
    """Config file remote (if URL names one) < ``-o`` options < explicit flags."""
    kwargs: dict[str, object] = {}
    if "://" not in args.url:
        try:
            kwargs.update(load_remote(args.url))
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    take_app_key(kwargs)
    password_file = kwargs.pop("password_file", None)
    if args.password_file is None and password_file is not None and not args.password_stdin:
        args.password_file = password_file
    if kwargs.pop("store_login", False):
        args.store_login = True
    values, flags = parse_options(args.options)
    delete = values.pop("delete", None)
    if delete is not None:
        if delete not in ("trash", "permanent"):
            raise UsageError("mount option delete must be 'trash' or 'permanent'")
        kwargs["delete_to_trash"] = delete == "trash"
    if values.get("events", "auto") not in ("auto", "off"):
        raise UsageError("mount option events must be 'auto' or 'off'")
    renames = {"metadata_ttl": "metadata_ttl_s", "negative_ttl": "negative_ttl_s", "timeout": "timeout_s",
               "upload_delay": "upload_delay_s", "events_ttl": "events_ttl_s"}
    kwargs.update({renames.get(k, k): v for k, v in values.items()})
    if "ro" in flags or args.read_only:
        kwargs["read_only"] = True
    if "allow_other" in flags or args.allow_other:
        kwargs["allow_other"] = True
    for flag, field_name in (("user", "user"), ("backend", "backend"), ("cache_dir", "cache_dir"), ("cache_size", "cache_size"),
                             ("mountpoint", "mountpoint")):
        value = getattr(args, flag)
        if value is not None:
            kwargs[field_name] = value
    if "url" not in kwargs:
        kwargs["url"] = args.url
    if kwargs.get("mountpoint") is None:
        raise UsageError("no mountpoint given (and the remote configures none)")
    kwargs["url"] = str(kwargs["url"]).rstrip("/")
    kwargs["mountpoint"] = Path(str(kwargs["mountpoint"])).expanduser().resolve()
    kwargs["fuse_options"] = sorted(flags & _FUSE_PASSTHROUGH)
    # kwargs mixes the fields' types (each converted by its option's parser above),
    # which a dict[str, object] cannot tell mypy
    return MountSettings(**kwargs), flags  # type: ignore[arg-type]


def read_password(args: argparse.Namespace, settings: MountSettings) -> str | None:
    """The password to log in with; None when the stored login is to be used.

    A password given on purpose (``--password-stdin``, ``--password-file``,
    ``CLOUDFS_PASSWORD``) is used whatever is stored; the prompt comes only
    when nothing is given and nothing is stored."""
    from cloudfs.client.tokenstore import TokenStore

    if args.password_pipe:
        # the background process: what the command the user typed settled on
        return sys.stdin.readline().rstrip("\n") or None
    try:
        given = passwords.explicit(stdin=args.password_stdin, file=args.password_file)
    except passwords.PasswordError as exc:
        raise UsageError(str(exc)) from None
    if given is not None:
        if settings.user is None:
            raise UsageError("a password needs an account: pass --user EMAIL")
        return given
    if TokenStore().load(settings.url, settings.user) is not None or needs_no_password():
        return None
    if settings.user is None:
        raise UsageError("no stored login for this server: pass --user EMAIL (or run: cloudfs login URL)")
    try:
        return passwords.prompt(f"Password for {settings.user} at {settings.url}: ",
                                instead=f"{passwords.HOW}, or run: cloudfs login URL")
    except passwords.PasswordError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from cloudfs.cli.logs import setup_logging
    from cloudfs.cli.mountpoint import MountError, check_fuse, check_mountpoint

    try:
        settings, flags = settings_from_args(args)
        if args.ready_fd is None:
            check_fuse()
            check_mountpoint(settings.mountpoint, allow_nonempty="nonempty" in flags)
        password = read_password(args, settings)
    except (UsageError, MountError, ValueError) as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    if not args.foreground:
        return _start_background(args, password, mount_log_file(settings.mountpoint))
    setup_logging(args.verbose, log_file=args.log_file, mount=True)
    code = mount_foreground(settings, password, ready_fd=args.ready_fd, store_login=args.store_login)
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> NoReturn:
    """End the mount process now that it has closed what it owns (the
    kernel mount, the journal, the caches, the connections): the
    interpreter's own teardown frees every object one by one, 0.2 s and
    more of CPU that ``cloudfs umount``, waiting for this exit, would wait
    for too.  Logs and standard streams are flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def mount_foreground(settings: MountSettings, password: str | None, *, ready_fd: int | None = None,
                     store_login: bool = False) -> int:
    """Mount and serve until unmounted.  With a ``password`` the mount logs
    in with it (never with a stored login instead), and keeps that login in
    the token store only if ``store_login``; without one it resumes the
    stored login, and keeps it current as the server renews it."""
    import trio

    from cloudfs.cli.serve import serve
    from cloudfs.client.api import ClientSettings, CloudreveClient
    from cloudfs.client.tokenstore import TokenStore
    from cloudfs.errors import CloudfsError

    ready = False

    def report(message: str) -> None:
        if ready_fd is not None:
            try:
                os.write(ready_fd, message.encode() + b"\n")
                os.close(ready_fd)
            except OSError:
                pass

    def on_ready() -> None:
        nonlocal ready
        ready = True
        report("ready")

    async def connect() -> CloudreveClient:
        return await CloudreveClient.connect(
            settings.url,
            email=settings.user,
            password=password,
            backend=settings.backend,
            resume=password is None,
            token_store=TokenStore() if password is None or store_login else None,
            # large socket reads: the mount streams big ranges
            settings=ClientSettings(request_timeout_s=settings.timeout_s, deadline_s=settings.timeout_s,
                                    download_read_size=1 << 20, delete_to_trash=settings.delete_to_trash),
        )

    try:
        trio.run(serve, settings, connect, on_ready)
    except (CloudfsError, RuntimeError, OSError) as exc:
        message = str(exc) or exc.__class__.__name__
        if not ready:
            report(f"error: {message}")
            print(f"cloudfs: {message}", file=sys.stderr)
        else:
            log.error("mount stopped: %s", message, exc_info=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so where the user looks (the log), not only on stderr
        log.exception("the mount stopped on an internal error")
        if not ready:
            report(f"error: internal error: {exc!r}")
            print(f"cloudfs: internal error: {exc!r}", file=sys.stderr)
        return 1
    return 0


def _start_background(args: argparse.Namespace, password: str | None, log_file: Path) -> int:
    """Re-run this command in the foreground, detached; wait for it to be ready."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # the password, however it was given, reaches the process through its standard input
    argv = [a for a in args.argv if a not in ("-f", "--foreground", "--password-stdin")]
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "cloudfs", *argv, "--foreground", "--ready-fd", str(write_end),
               "--password-pipe", "--log-file", str(log_file)]
    env = {k: v for k, v in os.environ.items() if k != "CLOUDFS_PASSWORD"}
    with open(os.devnull, "rb+") as devnull:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=devnull, stderr=devnull,
                                pass_fds=(write_end,), start_new_session=True, env=env)
    os.close(write_end)
    assert proc.stdin is not None
    proc.stdin.write(((password or "") + "\n").encode())
    proc.stdin.close()
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace").strip()
    if message == "ready":
        return 0
    if not message:
        proc.wait()
        message = f"the mount process exited ({proc.returncode}) before the mount was ready; see {log_file}"
    print(f"cloudfs: {message.removeprefix('error: ')}", file=sys.stderr)
    return 1
