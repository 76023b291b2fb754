"""``python -m cloudfs.server ...``: same flags as ``cloudfs server``.

Runs the server without importing the rest of the ``cloudfs`` CLI (whose
parser loads every subcommand), so tests can start it in isolation.
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloudfs server",
                                     description="run the bundled Cloudreve-compatible server")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
