"""What a bug report needs to know: the versions of cloudfs, pyfuse3, the
libfuse it runs on, and Python.  Shown by ``cloudfs --version``, at the top
of every mount's log and in ``cloudfs status --json``."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import platform
from importlib import metadata
from typing import Any, NoReturn

UNKNOWN = "unknown"


def cloudfs_version() -> str:
    try:
        return metadata.version("cloudfs")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return UNKNOWN


def _libfuse_version() -> str:
    # pyfuse3 exposes no libfuse version; ask the shared library it is linked
    # against (already loaded once pyfuse3 is imported, so dlopen finds that one)
    name = ctypes.util.find_library("fuse3") or "libfuse3.so.3"
    try:
        pkgversion = ctypes.CDLL(name).fuse_pkgversion
    except (OSError, AttributeError):
        return UNKNOWN
    pkgversion.restype = ctypes.c_char_p
    value = pkgversion()
    return value.decode() if value else UNKNOWN


@functools.cache  # fixed for the life of the process; status asks for it often
def versions() -> dict[str, str]:
    """Versions by component; a component that cannot be loaded says so rather than failing."""
    try:
        import pyfuse3

        fuse, libfuse = str(pyfuse3.__version__), _libfuse_version()
    except ImportError as exc:  # e.g. libfuse3 missing: --version must still answer
        fuse, libfuse = f"not importable ({exc})", UNKNOWN
    return {
        "cloudfs": cloudfs_version(),
        "pyfuse3": fuse,
        "libfuse": libfuse,
        "python": platform.python_version(),
    }


def version_line() -> str:
    v = versions()
    return f"cloudfs {v['cloudfs']} (pyfuse3 {v['pyfuse3']}, libfuse {v['libfuse']}, Python {v['python']})"


class VersionAction(argparse.Action):
    """``--version``: like argparse's own, but computed only when asked, so
    that parsing other commands does not import pyfuse3."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the versions of cloudfs, pyfuse3, libfuse and Python, and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> NoReturn:
        print(version_line())  # stdout, as argparse's own --version
        parser.exit()
