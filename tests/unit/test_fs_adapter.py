"""ops.py turns the fs core's own data into pyfuse3's and back: nothing is lost on the way."""

from __future__ import annotations

import dataclasses

import pyfuse3

from cloudfs.fs import attrs
from cloudfs.fs.handles import Opened
from cloudfs.fs.namespace import RENAME_EXCHANGE, RENAME_NOREPLACE
from cloudfs.fs.ops import entry_attributes, file_info, rename_flags


def test_every_attribute_reaches_the_kernel():
    names = [f.name for f in dataclasses.fields(attrs.Attributes)]
    kernel_names = {n for n in dir(pyfuse3.EntryAttributes()) if not n.startswith("_")}
    assert set(names) == kernel_names  # the core's record has pyfuse3's every field
    values = {name: i + 2 for i, name in enumerate(names)}
    direct = pyfuse3.EntryAttributes()  # what pyfuse3 keeps of each (not every field on every OS)
    for name, value in values.items():
        setattr(direct, name, value)
    reply = entry_attributes(attrs.Attributes(**values))
    assert {name: getattr(reply, name) for name in names} == {name: getattr(direct, name) for name in names}
    assert reply.st_size == values["st_size"] and reply.st_ino == values["st_ino"]


def test_opened_becomes_file_info():
    info = file_info(Opened(fh=7, keep_cache=False))
    assert (info.fh, info.keep_cache) == (7, False)
    assert file_info(Opened(fh=8)).keep_cache == pyfuse3.FileInfo().keep_cache


def test_rename_flags():
    assert rename_flags(0) == 0
    assert rename_flags(pyfuse3.RENAME_NOREPLACE) == RENAME_NOREPLACE
    assert rename_flags(pyfuse3.RENAME_EXCHANGE) == RENAME_EXCHANGE


async def test_a_handler_past_its_deadline_answers_etimedout_and_one_in_time_its_result() -> None:
    """Every kernel request runs under a deadline (timeout x DEADLINE_FACTOR):
    a handler stuck on a server that never answers gives the kernel
    ETIMEDOUT, never a hung request; one that finishes returns its result."""
    import errno
    from types import SimpleNamespace

    import pyfuse3
    import pytest
    import trio

    from cloudfs.fs.ops import DEADLINE_FACTOR, fuse_op

    class Handlers:
        core = SimpleNamespace(settings=SimpleNamespace(timeout_s=0.05 / DEADLINE_FACTOR))

        @fuse_op()
        async def stuck(self) -> None:
            await trio.sleep_forever()

        @fuse_op()
        async def quick(self, value: int) -> int:
            await trio.sleep(0)
            return value * 2

    handlers = Handlers()
    with trio.fail_after(5):
        with pytest.raises(pyfuse3.FUSEError) as info:
            await handlers.stuck()
        assert info.value.errno == errno.ETIMEDOUT
        assert await handlers.quick(21) == 42
