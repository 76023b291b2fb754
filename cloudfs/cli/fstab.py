"""``mount.cloudfs``: the helper mount(8) runs for ``cloudfs`` lines in /etc/fstab.

    https://drive.example.com /mnt/drive cloudfs user=alice@example.com,_netdev,noauto,x-systemd.automount 0 0

mount(8) calls ``mount.cloudfs SPEC DIR [-sfnv] [-o OPTIONS]``; this turns
that into ``cloudfs mount SPEC DIR ...``.  Options that only matter to mount(8)
or systemd are dropped; ``user=EMAIL`` is the account (log in once with
``cloudfs login`` so no password is needed at boot, or give
``password_file=``).
"""

from __future__ import annotations

import os
import sys

#: mount(8)/systemd options that cloudfs ignores
IGNORED = {"defaults", "auto", "noauto", "_netdev", "nofail", "users", "rw", "user", "owner", "group",
           "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "nouser"}
IGNORED_PREFIXES = ("x-systemd.", "x-", "comment=")
#: fstab option -> cloudfs mount flag taking the option's value
VALUE_FLAGS = {"user": "--user", "password_file": "--password-file", "cache_dir": "--cache-dir",
               "cache_size": "--cache-size"}
FLAG_OPTIONS = {"ro": "--read-only", "allow_other": "--allow-other"}


class HelperError(Exception):
    pass


def translate(argv: list[str]) -> list[str]:
    """mount.cloudfs arguments -> ``cloudfs mount`` arguments."""
    positional: list[str] = []
    options: list[str] = []
    verbose = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-o":
            if i + 1 >= len(argv):
                raise HelperError("-o needs a value")
            options.extend(part for part in argv[i + 1].split(",") if part)
            i += 2
            continue
        if arg.startswith("-o") and len(arg) > 2:
            options.extend(part for part in arg[2:].split(",") if part)
        elif arg == "-t":
            i += 1  # the type (cloudfs): nothing to do
        elif arg.startswith("-"):
            # -s sloppy, -f fake, -n no mtab, -v verbose
            if "v" in arg:
                verbose = True
            if "f" in arg[1:]:
                raise HelperError("fake mounts (-f) are not supported")
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 2:
        raise HelperError("usage: mount.cloudfs URL|REMOTE MOUNTPOINT [-o OPTIONS]")
    out = ["mount", positional[0], positional[1]]
    passthrough = []
    for option in options:
        key, sep, value = option.partition("=")
        if sep and key in VALUE_FLAGS:
            out += [VALUE_FLAGS[key], value]
        elif not sep and option in FLAG_OPTIONS:
            out.append(FLAG_OPTIONS[option])
        elif option in IGNORED or option.startswith(IGNORED_PREFIXES):
            continue
        else:
            passthrough.append(option)
    if passthrough:
        out += ["-o", ",".join(passthrough)]
    if verbose:
        out.append("-v")
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        args = translate(sys.argv[1:] if argv is None else argv)
    except HelperError as exc:
        print(f"mount.cloudfs: {exc}", file=sys.stderr)
        return 1
    os.execv(sys.executable, [sys.executable, "-m", "cloudfs", *args])
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
