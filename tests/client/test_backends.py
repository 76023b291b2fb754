"""The backend registry and the capability record, against the real server:
the client says what the backend can do; fs asks that, not the dialect."""

from __future__ import annotations

import errno

import pytest
import trio

from cloudfs.client.backends import RECOGNISERS, detect
from cloudfs.client.http import Http
from cloudfs.errors import CloudfsError, NotCloudreveError

from .conftest import FAST

ON_KOODRIVE = True


async def test_capabilities_describe_the_backend(client, dialect):
    caps = client.capabilities
    assert client.keeps_metadata == caps.custom_metadata
    if dialect == "koodrive":
        # id-addressed, pre-signed parts; a replace uploads beside and swaps (a new id); a recycle bin
        assert not caps.custom_metadata and not caps.overwrite_in_place and caps.replace_gives_new_id
        assert caps.trash and not caps.content_preconditions and caps.whole_file_hash
        assert caps.addressing == "id" and caps.upload_style == "presigned"
        return
    if dialect == "v3":
        # no versions: replacing uploads beside and swaps in a new object
        assert not caps.custom_metadata and not caps.overwrite_in_place and caps.replace_gives_new_id
        assert not caps.trash and not caps.content_preconditions
    else:
        assert caps.custom_metadata and caps.overwrite_in_place and not caps.replace_gives_new_id
        assert caps.trash and caps.content_preconditions
    assert caps.addressing == "path" and caps.upload_style == "relayed"


async def test_the_registry_recognises_the_server(server, dialect):
    http = Http(server.url, FAST)
    try:
        found = await detect(http)
        assert found.info.dialect == dialect
        named = await detect(http, "koodrive" if dialect == "koodrive" else "cloudreve")
        assert named.info.dialect == dialect
        with pytest.raises(NotCloudreveError) as info:
            await detect(http, "no-such-backend")
        assert info.value.errno == errno.EPROTONOSUPPORT and "cloudreve" in str(info.value)
    finally:
        await http.aclose()


def test_every_registered_backend_is_callable():
    assert RECOGNISERS and all(callable(r) for r in RECOGNISERS.values())


async def test_relocate_renames_and_moves_in_one_call(client, folder):
    await client.mkdir(f"{folder}/a")
    await client.mkdir(f"{folder}/b")
    entry = await client.create_file(f"{folder}/a/x")
    # across folders and under a new name, the new name already taken in the source folder
    await client.create_file(f"{folder}/a/y")
    moved = await client.relocate(entry, f"{folder}/b", "y", spare_name=".spare-x")
    assert moved.path == f"{folder}/b/y" and moved.file_id == entry.file_id
    assert (await client.stat(f"{folder}/b/y")).file_id == entry.file_id
    names = sorted(e.name for e in (await client.list_all(f"{folder}/a"))[1])
    assert names == ["y"]
    # within the folder: one rename
    again = await client.relocate(moved, f"{folder}/b", "z", spare_name=".spare-z")
    assert again.path == f"{folder}/b/z"


#: the move request of each dialect (Cloudreve 4, Cloudreve 3, KooDrive's move job)
MOVES = r"(/api/v4/file/move|/api/v3/object|/koodrive/ose/v1/jobs)$"


async def test_relocate_never_takes_the_new_name_in_the_source_folder(client, folder, server, local_file):
    """A relocation across folders under a new name renamed the object in
    its source folder first, so for as long as the move took the new name
    was taken there: a new file of that name uploaded meanwhile (files are
    made by their first upload) was refused, and the mount saved it as a
    conflict copy of its own file (the model test found it on KooDrive)."""
    await client.mkdir(f"{folder}/a")
    await client.mkdir(f"{folder}/b")
    entry = await client.create_file(f"{folder}/a/x")
    source, _ = local_file(4096)
    server.faults.set(path_regex=MOVES, latency_s=1.0, count=1)
    try:
        async with trio.open_nursery() as nursery:
            moved: list[object] = []

            async def relocate() -> None:
                moved.append(await client.relocate(entry, f"{folder}/b", "y", spare_name=".spare-x"))

            nursery.start_soon(relocate)
            with trio.fail_after(30):
                while server.faults.stats()["matched"] < 1:  # the move is held up
                    await trio.sleep(0.01)
            made = await client.upload(f"{folder}/a/y", source)
    finally:
        server.faults.clear()
    assert made.path == f"{folder}/a/y" and made.size == 4096
    assert (await client.stat(f"{folder}/b/y")).file_id == entry.file_id
    assert sorted(e.name for e in (await client.list_all(f"{folder}/a"))[1]) == ["y"]
    assert sorted(e.name for e in (await client.list_all(f"{folder}/b"))[1]) == ["y"]


async def test_relocate_under_a_name_the_server_refuses_leaves_the_object_where_it_was(client, folder, dialect):
    """The new name is given last, after the move: when the server refuses
    it, the object goes back to its folder and name."""
    if dialect != "koodrive":
        pytest.skip("Cloudreve takes any name the client's own check lets through")
    await client.mkdir(f"{folder}/a")
    await client.mkdir(f"{folder}/b")
    entry = await client.create_file(f"{folder}/a/x")
    with pytest.raises(CloudfsError):
        await client.relocate(entry, f"{folder}/b", "bad:name", spare_name=".spare-x")
    assert (await client.stat(f"{folder}/a/x")).file_id == entry.file_id
    assert [e.name for e in (await client.list_all(f"{folder}/b"))[1]] == []
