"""InodeRecords: the inode numbers and times of uploaded objects, kept in the
cache dir so the next mount shows the same (see cloudfs/fs/records.py)."""

from pathlib import Path

from cloudfs.fs.records import InodeRecords, Uploaded


def test_records_are_read_back_by_the_next_mount(tmp_path: Path):
    path = tmp_path / "inodes.jsonl"
    records = InodeRecords(path)
    records.put("a", Uploaded(10, "v1", 100, 200))
    records.put("b", Uploaded(11, "v1", 101, 201))
    records.put("a", Uploaded(10, "v2", 300, 400))  # a new version of a
    records.drop("b")  # deleted
    records.close()
    again = InodeRecords(path)
    assert again.get("a") == Uploaded(10, "v2", 300, 400)
    assert again.get("b") is None and again.owner_of(11) is None
    assert again.owner_of(10) == "a"


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path):
    path = tmp_path / "inodes.jsonl"
    records = InodeRecords(path)
    records.put("a", Uploaded(10, "v1", 100, 200))
    records.close()
    with open(path, "a") as fp:
        fp.write('{"id": "b", "ino": 1')
    again = InodeRecords(path)
    assert again.get("a") == Uploaded(10, "v1", 100, 200) and len(again) == 1


def test_stale_lines_are_compacted_and_the_oldest_records_go_first(tmp_path: Path):
    path = tmp_path / "inodes.jsonl"
    records = InodeRecords(path, kept=100)
    for n in range(3000):
        records.put(f"id{n % 150}", Uploaded(1000 + n % 150, f"v{n}", n, n))
    records.close()
    assert len(records) == 100 and records.get("id49") is None and records.get("id50") is not None
    lines = len(path.read_text().splitlines())
    again = InodeRecords(path, kept=100)
    assert len(again) == 100 and again.get("id149") == records.get("id149")
    assert len(path.read_text().splitlines()) == 100 < lines


def test_an_unwritable_store_does_not_fail_the_mount(tmp_path: Path):
    records = InodeRecords(tmp_path / "missing" / "inodes.jsonl")
    records.put("a", Uploaded(10, "v1", 100, 200))  # logged, kept in memory
    assert records.get("a") == Uploaded(10, "v1", 100, 200)
