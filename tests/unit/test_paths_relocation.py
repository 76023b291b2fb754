"""Where paths go when subtrees move together (renames, exchanges)."""

from __future__ import annotations

from cloudfs.client.paths import Relocation, relocated


def test_a_move_takes_the_root_and_everything_below_it_and_nothing_else() -> None:
    moves = Relocation({"/a/b": "/c"})
    assert moves.of("/a/b") == "/c"
    assert moves.of("/a/b/x/y") == "/c/x/y"
    assert moves.of("/a/bb") is None  # a sibling whose name starts the same
    assert moves.of("/a") is None


def test_an_exchange_swaps_both_subtrees_at_once() -> None:
    moves = {"/x": "/y", "/y": "/x"}
    assert [relocated(p, moves) for p in ("/x", "/y/f", "/z")] == ["/y", "/x/f", None]


def test_roots_with_a_trailing_slash_and_the_drive_root() -> None:
    assert Relocation({"/d/": "/e/"}).of("/d/f") == "/e/f"
    assert Relocation({"/": "/moved"}).of("/f") == "/moved/f"
