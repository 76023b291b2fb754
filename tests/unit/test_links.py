"""How links are told apart where the name carries the mark (no metadata: Cloudreve 3, KooDrive)."""

from cloudfs.client.models import LINK_KEY, Entry
from cloudfs.fs.links import LinkRule


def entry(path: str, *, is_dir: bool = False, metadata: dict[str, str] | None = None) -> Entry:
    return Entry(file_id=path, path=path, is_dir=is_dir, size=0, mtime_ns=0, ctime_ns=0, metadata=metadata or {})


def test_a_link_file_is_a_name_longer_than_the_mark_ending_in_it():
    rule = LinkRule(by_name=True)
    assert rule.is_link(entry("/d/target.rclonelink"))
    assert not rule.is_link(entry("/d/.rclonelink"))  # the mark alone names no link
    assert not rule.is_link(entry("/.rclonelink"))
    assert not rule.is_link(entry("/d/x.rclonelink", is_dir=True))
    assert not rule.is_link(entry("/d/plain.txt"))


def test_link_files_show_without_their_mark_unless_the_name_is_taken():
    rule = LinkRule(by_name=True)
    children = [entry("/d/a.rclonelink"), entry("/d/b.rclonelink"), entry("/d/b"), entry("/d/c")]
    assert [name for name, _ in rule.shown_names(children)] == ["a", "b.rclonelink", "b", "c"]
    assert [name for name, _ in rule.shown_names([entry("/d/c")])] == ["c"]


def test_link_files_held_for_the_last_page_show_as_among_all_the_children():
    # readdir hands out the other names as pages come and the links at the end:
    # a name taken on another page still keeps a link's mark on
    rule = LinkRule(by_name=True)
    pages = [[entry("/d/b"), entry("/d/c")], [entry("/d/a.rclonelink"), entry("/d/b.rclonelink")]]
    everyone = [child for page in pages for child in page]
    links = [child for child in everyone if rule.is_link(child)]
    assert [name for name, _ in rule.shown_names(links, everyone)] == ["a", "b.rclonelink"]
    assert [name for name, _ in rule.shown_names(links)] == ["a", "b"]  # (without the others: b looks free)


def test_by_metadata_names_are_shown_as_they_are():
    rule = LinkRule(by_name=False)
    link = entry("/d/l.rclonelink", metadata={LINK_KEY: "1"})
    assert rule.is_link(link) and not rule.is_link(entry("/d/x.rclonelink"))
    assert [name for name, _ in rule.shown_names([link])] == ["l.rclonelink"]
