"""The parser of one subcommand: its positional arguments may come before,
between or after its options.

argparse on its own fills every positional from the first run of them, so
``cloudfs mount work -o ro ~/Work`` gave the optional mountpoint nothing
from ``work`` and then refused ``~/Work`` as unrecognized.  Parsing
"intermixed" (options first, then the positionals that are left) takes the
command line as a person means it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class CommandParser(argparse.ArgumentParser):
    _intermixing = False

    # typeshed overloads parse_known_args on the namespace's type; one signature covers our use
    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:  # the passes of parse_known_intermixed_args itself
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        except TypeError:
            # a parser argparse cannot parse intermixed (subcommands of its own)
            return super().parse_known_args(args, namespace)
        finally:
            self._intermixing = False
