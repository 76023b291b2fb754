"""The files under ``share/`` that are generated from the argument parser:
the man page (by argparse-manpage) and the bash and zsh completions (by
shtab, as ``cloudfs completion`` prints them).

They are generated here, in the checkout, and committed, because building a
wheel cannot import cloudfs (its dependencies are not in the build
environment); the wheel ships them as data files and ``make install`` copies
them.  A test fails when they fall behind the parser::

    python -m cloudfs.cli.sharefiles          # rewrite them (make share)
    python -m cloudfs.cli.sharefiles --check  # exit 1 if any is out of date
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from cloudfs.cli import completion
from cloudfs.cli.version import cloudfs_version

#: roff sections the parser cannot produce: where things live, and related pages
EXTRA_SECTIONS: dict[str, str] = {
    "fstab": (
        "cloudfs installs \\fBmount.cloudfs\\fR, so mount(8) mounts lines of type \\fBcloudfs\\fR:\n"
        ".PP\n.nf\n"
        "https://drive.example.com /mnt/drive cloudfs user=alice@example.com,_netdev,noauto 0 0\n"
        ".fi\n.PP\n"
        "\\fBuser=\\fR is the account (log in once with \\fBcloudfs login\\fR), "
        "\\fBpassword_file=\\fR, \\fBcache_dir=\\fR, \\fBcache_size=\\fR, \\fBro\\fR, \\fBallow_other\\fR "
        "and the \\fB\\-o\\fR options of \\fBcloudfs mount\\fR pass through; options that only matter "
        "to mount(8) or systemd are dropped."
    ),
    "files": (
        ".TP\n\\fI~/.config/cloudfs/config.toml\\fR\nnamed remotes ([remotes.NAME] tables)\n"
        ".TP\n\\fI~/.local/state/cloudfs/tokens.json\\fR\nstored logins (refresh tokens, mode 0600)\n"
        ".TP\n\\fI~/.local/state/cloudfs/logs/\\fR\nlogs of background mounts, one per mountpoint\n"
        ".TP\n\\fI~/.cache/cloudfs/\\fR\nblock cache and staged writes, one directory per account"
    ),
    "environment": (
        ".TP\n\\fBCLOUDFS_PASSWORD\\fR\nthe password, when no stored login or password file is used"
    ),
    "see also": "fusermount3(1), mount(8), fstab(5), systemctl(1)",
}


#: argparse wraps usage and help text to the terminal's width; the page must not depend on it
MAN_WIDTH = 80


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    # typeshed's _FormatterClass protocol names only ``prog``; every HelpFormatter takes ``width`` too
    parser.formatter_class = functools.partial(parser.formatter_class, width=MAN_WIDTH)  # type: ignore[call-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fixed_width(sub)


def manpage() -> str:
    # argparse-manpage ships no type information (no py.typed, no stubs package)
    from argparse_manpage.manpage import Manpage  # type: ignore[import-untyped]

    from cloudfs.cli.main import build_parser

    parser = build_parser()
    _fixed_width(parser)
    page = Manpage(parser)
    page.description = "mount a Cloudreve cloud drive as a local directory"
    page.manual = "User Commands"
    page.source = f"cloudfs {cloudfs_version()}"
    page.date = ""  # no build date: the committed page stays byte-identical to a fresh one
    for heading, content in EXTRA_SECTIONS.items():
        page.add_section(heading, "=", content)
    return str(page)


#: path under share/ -> what it contains
FILES: dict[str, Callable[[], str]] = {
    "man/man1/cloudfs.1": manpage,
    "bash-completion/completions/cloudfs": lambda: completion.script("bash"),
    "zsh/site-functions/_cloudfs": lambda: completion.script("zsh"),
}


def stale(share: Path) -> list[Path]:
    """The generated files under ``share`` whose content is not what the parser gives now."""
    out = []
    for name, render in FILES.items():
        path = share / name
        if not path.exists() or path.read_text() != render():
            out.append(path)
    return out


def write(share: Path) -> None:
    for name, render in FILES.items():
        path = share / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudfs.cli.sharefiles",
                                     description="write (or check) the generated files under share/")
    parser.add_argument("--share", type=Path, default=Path("share"), help="the share/ directory (default: ./share)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        behind = stale(args.share)
        for path in behind:
            print(f"{path} is out of date: run make share", file=sys.stderr)
        return 1 if behind else 0
    write(args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
