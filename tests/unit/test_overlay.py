"""The client's metadata overlay for backends that keep none (client/overlay.py)."""

from cloudfs.client.models import MODE_KEY, MTIME_KEY, UPLOAD_TAG_KEY, Entry, mtime_value, stored_mtime_ns
from cloudfs.client.overlay import MetadataOverlay


def entry(file_id: str, path: str = "/f", *, mtime_ms: int = 1000) -> Entry:
    return Entry(file_id=file_id, path=path, is_dir=False, size=1, mtime_ns=mtime_ms * 1_000_000, ctime_ns=0,
                 version=f"v-{file_id}")


def test_values_show_on_every_entry_of_the_object_whatever_its_path():
    overlay = MetadataOverlay()
    overlay.set("a", {MODE_KEY: "755"})
    assert overlay.apply(entry("a", "/x")).metadata == {MODE_KEY: "755"}
    assert overlay.apply(entry("a", "/moved/y")).metadata == {MODE_KEY: "755"}  # a rename keeps the id
    assert overlay.apply(entry("b")).metadata == {}
    overlay.set("a", {MODE_KEY: None})
    assert overlay.apply(entry("a")).metadata == {}


def test_a_chmod_outlives_the_inode():
    """A chmod on a backend without metadata lived on the fs node: it went
    with the node when the kernel forgot the inode (a cloned script.sh lost
    its x bit).  Kept by the client now, any fresh entry shows it."""
    overlay = MetadataOverlay()
    overlay.set("s", {MODE_KEY: "755"})
    assert [e.metadata.get(MODE_KEY) for e in overlay.apply_all([entry("s"), entry("t")])] == ["755", None]


def test_a_replace_carries_what_belongs_to_the_file_not_to_its_content():
    overlay = MetadataOverlay()
    overlay.uploaded("old", tag="t1", mtime_ms=5)
    overlay.set("old", {MODE_KEY: "600", MTIME_KEY: mtime_value(7, "v-old")})
    overlay.uploaded("new", tag="t2", mtime_ms=9, metadata={"dav:cloudfs:other": "x"})
    overlay.replaced("old", "new")
    shown = overlay.apply(entry("new", mtime_ms=20))  # the swap's rename set the time to now
    assert shown.metadata[MODE_KEY] == "600" and shown.metadata[UPLOAD_TAG_KEY] == "t2"
    assert shown.metadata["dav:cloudfs:other"] == "x"
    assert stored_mtime_ns(shown) == 9_000_000  # the time its upload asked for
    assert overlay.apply(entry("old")).metadata == {}  # gone with the old object


def test_an_uploads_own_metadata_wins_over_the_replaced_files():
    overlay = MetadataOverlay()
    overlay.set("old", {MODE_KEY: "600"})
    overlay.uploaded("new", metadata={MODE_KEY: "644"})
    overlay.replaced("old", "new")
    assert overlay.apply(entry("new")).metadata[MODE_KEY] == "644"


def test_the_asked_mtime_shows_only_where_the_server_shows_another_and_a_later_time_wins():
    overlay = MetadataOverlay()
    overlay.uploaded("a", mtime_ms=1000)
    assert MTIME_KEY not in overlay.apply(entry("a", mtime_ms=1000)).metadata  # the server kept it
    assert stored_mtime_ns(overlay.apply(entry("a", mtime_ms=2000))) == 1000 * 1_000_000
    overlay.set("a", {MTIME_KEY: mtime_value(123, "v-a")})
    assert stored_mtime_ns(overlay.apply(entry("a", mtime_ms=2000))) == 123


def test_bounded_and_forgotten_with_deleted_objects():
    overlay = MetadataOverlay(maxsize=2)
    for file_id in "abc":
        overlay.set(file_id, {MODE_KEY: "700"})
    assert overlay.apply(entry("a")).metadata == {}  # the oldest went
    overlay.forget(["c"])
    assert overlay.apply(entry("c")).metadata == {} and overlay.apply(entry("b")).metadata == {MODE_KEY: "700"}
    overlay.uploaded("d")  # nothing to keep: nothing kept
    assert overlay.apply(entry("b")).metadata == {MODE_KEY: "700"}
