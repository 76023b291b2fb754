"""StagedFiles: the write-back's staged files, by id and by path."""

from pathlib import Path

from cloudfs.upload.registry import StagedFiles
from cloudfs.upload.staging import LocalFile


def staged(file_id: str, path: str, *, dirty: bool = True) -> LocalFile:
    return LocalFile(file_id=file_id, remote_path=path, staging=Path("/nonexistent") / file_id, size=0,
                     mtime_ns=0, dirty=dirty)


def test_staged_files_are_found_by_path_through_renames_and_rekeys():
    files = StagedFiles()
    a, b = staged("pending:a", "/d/a"), staged("pending:b", "/d/b")
    files.add(a)
    files.add(b)
    assert files.at("/d/a") == [("pending:a", a)] and files.claimed("/d/b")
    # a file's rename moves only what is at its path; an exchange swaps two at once
    assert files.relocate({"/d/a": "/d/b", "/d/b": "/d/a"}, folders=False) == [a, b]
    assert (a.remote_path, b.remote_path) == ("/d/b", "/d/a")
    assert files.at("/d/b") == [("pending:a", a)] and files.at("/d/a") == [("pending:b", b)]
    # a folder's rename moves everything below it
    files.relocate({"/d": "/e"})
    assert files.at("/e/b") == [("pending:a", a)] and files.at("/d/b") == []
    assert files.under("/e") == [a, b] and files.under("/e/a", folder=False) == [b]
    # a landed upload gives the file its server id
    a.file_id = "id-a"
    files.discard(a, "pending:a")
    files.add(a)
    assert files.at("/e/b") == [("id-a", a)] and "pending:a" not in files.unsent
    # a conflict copy's name
    files.set_path(a, "/e/b (conflict)")
    assert files.at("/e/b") == [] and files.at("/e/b (conflict)") == [("id-a", a)]
    files.discard(a)
    assert files.at("/e/b (conflict)") == [] and not files.claimed("/e/b (conflict)")


def test_staged_files_another_file_staged_under_the_same_id_replaces_it_in_the_index():
    files = StagedFiles()
    old, new = staged("x", "/old"), staged("x", "/new")
    files.add(old)
    files.add(new)
    assert files.at("/old") == [] and files.at("/new") == [("x", new)]
    files.discard(old)  # not the one staged under "x" now: stays
    assert files.at("/new") == [("x", new)]
