"""The backend registry and the capability record, against the real server:
the client says what the backend can do; fs asks that, not the dialect."""

from __future__ import annotations

import errno

import pytest

from cloudfs.client.backends import RECOGNISERS, detect
from cloudfs.client.http import Http
from cloudfs.errors import NotCloudreveError

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
