"""The change feed's merge rules (``eventhub.merge``, Cloudreve's ``DebounceEvents``)."""

from __future__ import annotations

from cloudfs.server.v4.eventhub import Event, merge


def ev(kind: str, fid: str, src: str, dst: str = "") -> Event:
    return Event(kind, fid, src, dst)


def test_modify_after_create_or_modify_is_absorbed() -> None:
    assert merge([ev("create", "a", "/a"), ev("modify", "a", "/a")]) == [ev("create", "a", "/a")]
    assert merge([ev("modify", "a", "/a"), ev("modify", "a", "/a")]) == [ev("modify", "a", "/a")]


def test_create_then_delete_vanishes_and_a_later_create_goes_last() -> None:
    events = [ev("create", "a", "/a"), ev("create", "b", "/b"), ev("delete", "a", "/a"), ev("create", "a", "/a2")]
    assert merge(events) == [ev("create", "b", "/b"), ev("create", "a", "/a2")]


def test_renames_chain_and_cancel() -> None:
    assert merge([ev("rename", "a", "/x", "/y"), ev("rename", "a", "/y", "/z")]) == [ev("rename", "a", "/x", "/z")]
    assert merge([ev("rename", "a", "/x", "/y"), ev("rename", "a", "/y", "/x")]) == []
    assert merge([ev("create", "a", "/x"), ev("rename", "a", "/x", "/y")]) == [ev("create", "a", "/y")]
    assert merge([ev("modify", "a", "/x"), ev("rename", "a", "/x", "/y")]) == [ev("rename", "a", "/x", "/y")]


def test_delete_wins_over_modify_and_rename_and_restore_recreates() -> None:
    assert merge([ev("modify", "a", "/x"), ev("delete", "a", "/x")]) == [ev("delete", "a", "/x")]
    assert merge([ev("rename", "a", "/x", "/y"), ev("delete", "a", "/y")]) == [ev("delete", "a", "/y")]
    assert merge([ev("delete", "a", "/x"), ev("create", "a", "/x")]) == [ev("create", "a", "/x")]
    assert merge([ev("delete", "a", "/x"), ev("modify", "a", "/x"), ev("rename", "a", "/x", "/y")]) == \
        [ev("delete", "a", "/x")]
