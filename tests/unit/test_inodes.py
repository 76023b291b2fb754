from cloudfs.client.models import Entry
from cloudfs.fs.inodes import ROOT_INODE, InodeTable, hashed_number
from cloudfs.fs.records import InodeRecords, Uploaded


def entry(file_id: str, path: str, *, is_dir: bool = False) -> Entry:
    return Entry(file_id=file_id, path=path, is_dir=is_dir, size=0, mtime_ns=0, ctime_ns=0)


def test_inodes_are_keyed_by_object_id_and_survive_rename():
    table = InodeTable(entry("root", "/", is_dir=True))
    a = table.remember(entry("a", "/x.txt"))
    again = table.remember(entry("a", "/renamed.txt"))
    assert again is a and a.path == "/renamed.txt" and a.lookups == 2
    b = table.remember(entry("b", "/x.txt"))
    assert b.ino != a.ino


def test_inodes_forget_drops_unreferenced_nodes_and_numbers_are_never_reused():
    table = InodeTable(entry("root", "/", is_dir=True))
    seen = set()
    for i in range(1000):
        node = table.remember(entry(f"id{i}", f"/f{i}"))
        assert node.ino not in seen
        seen.add(node.ino)
        table.forget(node.ino, 1)
    assert len(table) == 1  # only the root is left: memory does not grow on a tree walk
    assert table.get(ROOT_INODE) is not None
    table.forget(ROOT_INODE, 100)
    assert table.get(ROOT_INODE) is not None


def test_inodes_times_only_the_mount_knows_outlive_a_forget():
    # the kernel forgets an unused inode once its entry times out: a folder's
    # changed mtime, a ctime or an explicit atime must not go with the node
    table = InodeTable(entry("root", "/", is_dir=True))
    folder = table.remember(entry("d", "/d", is_dir=True))
    folder.atime_ns, folder.changed_ns, folder.children_changed_ns = 1, 2, 3
    table.forget(folder.ino, 1)
    assert table.by_file_id("d") is None
    again = table.remember(entry("d", "/d", is_dir=True))
    assert (again.atime_ns, again.changed_ns, again.children_changed_ns) == (1, 2, 3)
    # an object removed through the mount keeps nothing
    table.detach(again)
    table.forget(again.ino, 1)
    fresh = table.remember(entry("d", "/d", is_dir=True))
    assert (fresh.atime_ns, fresh.changed_ns, fresh.children_changed_ns) == (None, None, None)


def test_inodes_open_or_staged_nodes_stay_until_released():
    table = InodeTable(entry("root", "/", is_dir=True))
    node = table.remember(entry("a", "/a"))
    node.opens = 1
    table.forget(node.ino, 1)
    assert table.get(node.ino) is node
    node.opens = 0
    table.drop_if_unused(node)
    assert table.get(node.ino) is None


def test_inodes_detach_and_move_subtree():
    table = InodeTable(entry("root", "/", is_dir=True))
    folder = table.remember(entry("d", "/d", is_dir=True))
    child = table.remember(entry("c", "/d/sub/c.txt"))
    other = table.remember(entry("o", "/dx/c.txt"))
    table.move_subtrees({"/d": "/e/d2"})
    assert folder.path == "/e/d2" and child.path == "/e/d2/sub/c.txt" and other.path == "/dx/c.txt"
    table.detach(child)
    assert child.unlinked and table.by_file_id("c") is None
    # a new object with the same path is a new inode
    fresh = table.remember(entry("c2", "/e/d2/sub/c.txt"))
    assert fresh is not child


def test_inodes_exchange_swaps_two_subtrees_at_once():
    table = InodeTable(entry("root", "/", is_dir=True))
    a = table.remember(entry("a", "/x/a", is_dir=True))
    inside_a = table.remember(entry("ia", "/x/a/f"))
    b = table.remember(entry("b", "/y/b"))
    table.move_subtrees({"/x/a": "/y/b", "/y/b": "/x/a"})
    assert (a.path, inside_a.path, b.path) == ("/y/b", "/y/b/f", "/x/a")


def test_inodes_by_path_follow_every_path_change_and_drop():
    # a file's rename finds its nodes by path (no pass over every inode):
    # the index follows entries set anywhere, and forgets dropped nodes
    table = InodeTable(entry("root", "/", is_dir=True))
    a = table.remember(entry("a", "/d/a"))
    b = table.remember(entry("b", "/d/b"))
    assert table.at_path("/d/a") == [a] and table.at_path("/") == [table.root]
    a.entry = entry("a", "/d/a2")  # (as the namespace sets a node's entry)
    assert table.at_path("/d/a") == [] and table.at_path("/d/a2") == [a]
    table.move_subtrees({"/d/a2": "/d/b", "/d/b": "/d/a2"}, folders=False)
    assert (a.path, b.path) == ("/d/b", "/d/a2")
    assert table.at_path("/d/b") == [a] and table.at_path("/d/a2") == [b]
    table.forget(a.ino, 1)
    assert table.get(a.ino) is None and table.at_path("/d/b") == []
    again = table.remember(entry("a", "/d/b"))
    assert table.at_path("/d/b") == [again]


def test_inodes_file_moves_leave_other_paths_alone():
    table = InodeTable(entry("root", "/", is_dir=True))
    moved = table.remember(entry("m", "/d/m"))
    near = table.remember(entry("n", "/d/m.tmp"))
    gone = table.remember(entry("g", "/d/m"))
    table.detach(gone)
    table.move_subtrees({"/d/m": "/e/m"}, folders=False)
    assert (moved.path, near.path, gone.path) == ("/e/m", "/d/m.tmp", "/d/m")


def test_inodes_an_object_whose_inode_was_forgotten_gets_its_number_back():
    # git's index keeps st_ino: a file the kernel forgot (its entry timed out
    # while nothing held it) is the same file at its next lookup
    table = InodeTable(entry("root", "/", is_dir=True))
    a = table.remember(entry("a", "/a"))
    b = table.remember(entry("b", "/b"))
    table.forget(a.ino, 1)
    assert table.get(a.ino) is None
    assert table.remember(entry("a", "/a")).ino == a.ino
    assert table.remember(entry("c", "/c")).ino not in (a.ino, b.ino)  # never another object's


def test_inodes_an_old_id_leads_to_the_rebound_node_without_its_stale_entry():
    # a file created here gets its id when its upload lands; a replace may give
    # a new one (Cloudreve 3, KooDrive): an answer read before names the old id
    table = InodeTable(entry("root", "/", is_dir=True))
    node = table.remember(entry("pending:1", "/f"))
    table.rebind(node, entry("r1", "/f"))
    table.rebind(node, entry("r2", "/f"))
    for stale in ("pending:1", "r1"):
        assert table.remember(entry(stale, "/f")) is node
        assert node.entry.file_id == "r2"  # the newer entry stays
    assert node.lookups == 3
    table.detach(node)  # removed: an old id names nothing any more
    assert table.remember(entry("r1", "/f")) is not node


def test_inode_numbers_are_the_same_in_a_new_table():
    # a remount (a new table, nothing kept) numbers every object the server
    # handed out as before: git's index, rsync and tar see the same st_ino
    first, second = (InodeTable(entry("root", "/", is_dir=True)) for _ in range(2))
    ids = [f"id{i}" for i in range(200)]
    numbers = [first.remember(entry(i, f"/{i}")).ino for i in ids]
    assert [second.remember(entry(i, f"/{i}")).ino for i in reversed(ids)] == numbers[::-1]
    assert len(set(numbers)) == len(ids) and all(ROOT_INODE < n < 1 << 63 for n in numbers)


def test_inode_numbers_recorded_for_an_object_are_its_own_and_never_another_ones():
    # a file created here kept the number of its first, local id: its record
    # gives it back, and an object whose hash is that number takes its next one
    records = InodeRecords()
    taken = hashed_number("b")
    records.put("x", Uploaded(taken, "v1", 1, 2))
    table = InodeTable(entry("root", "/", is_dir=True), records)
    b = table.remember(entry("b", "/b"))
    assert b.ino == hashed_number("b", 1)
    x = table.remember(entry("x", "/x"))
    assert x.ino == taken and x.uploaded == Uploaded(taken, "v1", 1, 2)
    # a number an inode holds is never handed to another object either
    other = InodeTable(entry("root", "/", is_dir=True))
    held = other.remember(entry("c", "/c"))
    other.records.put("d", Uploaded(held.ino, "v", 0, 0))  # (a record naming a number in use)
    assert other.remember(entry("d", "/d")).ino not in (held.ino, ROOT_INODE)
