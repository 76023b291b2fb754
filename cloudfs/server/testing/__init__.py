"""Test support for the bundled server, kept apart from both dialects.

:mod:`.harness` runs the server as a subprocess for tests (:func:`start_server`,
:class:`RunningServer`, :class:`FaultControl`; its names are handed on here so
``from cloudfs.server.testing import start_server`` reads as before);
:mod:`.faults` is the fault injector the server mounts with ``--faults``;
:mod:`.demo_tree` seeds the demo drive.
"""

from .harness import DEFAULT_PASSWORD, DEFAULT_USER, FaultControl, RunningServer, start_server

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USER", "FaultControl", "RunningServer", "start_server"]
