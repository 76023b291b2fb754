from cloudfs.client.models import Entry
from cloudfs.fs.meta import ABSENT, MetaCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(path: str, file_id: str = "", is_dir: bool = False) -> Entry:
    return Entry(file_id=file_id or path, path=path, is_dir=is_dir, size=1, mtime_ns=0, ctime_ns=0)


def test_meta_listing_answers_lookups_of_children_including_absent_ones():
    clock = Clock()
    meta = MetaCache(ttl_s=60, negative_ttl_s=5, timer=clock)
    meta.put_listing(entry("/d", is_dir=True), [entry("/d/a"), entry("/d/b")])
    assert meta.entry("/d/a") == entry("/d/a")
    assert meta.entry("/d/zzz") is ABSENT
    assert meta.entry("/d") == entry("/d", is_dir=True)
    assert meta.entry("/other/x") is None
    clock.now = 61
    assert meta.entry("/d/a") is None  # expired: ask the server again


def test_meta_negative_entries_are_brief():
    clock = Clock()
    meta = MetaCache(ttl_s=60, negative_ttl_s=5, timer=clock)
    meta.put_absent("/x")
    assert meta.entry("/x") is ABSENT
    clock.now = 6
    assert meta.entry("/x") is None
    meta.put_absent("/x")
    meta.put(entry("/x"))
    assert meta.entry("/x") == entry("/x")


def test_meta_local_changes_update_cached_listings():
    meta = MetaCache()
    meta.put_listing(entry("/d", is_dir=True), [entry("/d/a")])
    meta.put(entry("/d/new"))
    assert set(meta.listing("/d").children) == {"a", "new"}
    meta.remove("/d/a")
    assert set(meta.listing("/d").children) == {"new"}
    assert meta.entry("/d/a") is ABSENT
    meta.put_listing(entry("/d/sub", is_dir=True), [entry("/d/sub/x")])
    meta.forget_subtree("/d")
    assert meta.listing("/d") is None and meta.listing("/d/sub") is None


def test_meta_listing_size_is_bounded():
    meta = MetaCache(max_listed_entries=100)
    meta.put_listing(entry("/big", is_dir=True), [entry(f"/big/{i}") for i in range(500)])
    assert meta.listing("/big") is None  # too big to keep; still usable once by its caller
    for i in range(10):
        meta.put_listing(entry(f"/d{i}", is_dir=True), [entry(f"/d{i}/{j}") for j in range(30)])
    kept = sum(meta.listing(f"/d{i}") is not None for i in range(10))
    assert 0 < kept < 10


def test_meta_retime_starts_over_with_the_new_ttl():
    clock = Clock()
    meta = MetaCache(ttl_s=60, negative_ttl_s=5, timer=clock)
    meta.put_listing(entry("/d", is_dir=True), [entry("/d/a")])
    meta.put_absent("/gone")
    meta.retime(600)  # the change feed went live
    assert meta.entry("/d/a") is None and meta.entry("/gone") is None  # a full re-check
    meta.put_listing(entry("/d", is_dir=True), [entry("/d/a")])
    clock.now = 500
    assert meta.entry("/d/a") == entry("/d/a")  # trusted for the long TTL
    clock.now = 601
    assert meta.entry("/d/a") is None


def test_meta_an_answer_read_before_a_change_of_this_mount_does_not_undo_it():
    # a listing or stat asked for just before an upload lands, answered after
    meta = MetaCache()
    folder = entry("/d", is_dir=True)
    since = meta.epoch
    landed = entry("/d/new", "r1")
    meta.put(landed)  # the upload landed meanwhile (the server's answer was read before)
    meta.put(entry("/d/replaced", "r3"))
    meta.remove("/d/gone")
    listing = meta.put_listing(folder, [entry("/d/replaced", "r2"), entry("/d/gone"), entry("/d/other")], since)
    assert listing.children == {"replaced": entry("/d/replaced", "r3"), "other": entry("/d/other"),
                                "new": landed}
    assert meta.entry("/d/new") == landed and meta.entry("/d/gone") is ABSENT
    # a stat likewise
    assert meta.fill(entry("/d/replaced", "r2"), since) == entry("/d/replaced", "r3")
    assert meta.fill_absent("/d/new", since) == landed
    assert meta.entry("/d/new") == landed
    # one read after the change is the server's word
    later = meta.epoch
    assert meta.fill(entry("/d/new", "r9"), later) == entry("/d/new", "r9")
    assert meta.entry("/d/new") == entry("/d/new", "r9")
    assert meta.current(entry("/d/replaced", "r2"), since) == entry("/d/replaced", "r3")
