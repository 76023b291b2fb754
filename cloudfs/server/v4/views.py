"""JSON shapes of Cloudreve objects (``service/explorer/response.go``, ``service/user``).

FileResponse, StoragePolicy, NavigatorProps, User, Group and Token (times as
:func:`cloudfs.server.common.goformat.go_time` writes them).  Field order and
``omitempty`` behaviour follow the Go structs.
"""

from __future__ import annotations

import base64
from typing import Any

from ..common import ids
from ..common.goformat import go_time

# boolset bits of the navigators (pkg/filemanager/fs/dbfs/navigator.go)
_MY_CAPS = (0, 1, 6, 7, 8, 9, 10, 14, 15, 16, 18, 19, 20, 23, 24)
_TRASH_CAPS = (9, 14, 15, 17, 19)
ORDER_BY_OPTIONS = ["name", "size", "updated_at", "created_at"]
ORDER_DIRECTION_OPTIONS = ["asc", "desc"]
POLICY_ID = 1
POLICY_NAME = "Default storage policy"
USER_GROUP_ID = 2
ANON_GROUP_ID = 3
# group permission bits: Share(2), ShareDownload(7), RedirectedSource(11)
_USER_GROUP_PERMS = (2, 7, 11)
_ANON_GROUP_PERMS = (1, 7)
TRASH_RETENTION = 7 * 24 * 3600


def boolset(bits: tuple[int, ...]) -> str:
    size = max(bits) // 8 + 1
    raw = bytearray(size)
    for b in bits:
        raw[b // 8] |= 1 << (b % 8)
    return base64.b64encode(bytes(raw)).decode()


MY_CAPABILITY = boolset(_MY_CAPS)  # "w8edAQ=="
TRASH_CAPABILITY = boolset(_TRASH_CAPS)


def storage_policy(codec: ids.IdCodec, max_size: int, chunk_concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": codec.encode(POLICY_ID, ids.POLICY), "name": POLICY_NAME,
                           "type": "local", "max_size": max_size}
    if chunk_concurrency:
        out["chunk_concurrency"] = chunk_concurrency
    return out


def navigator_props(trash: bool, max_page_size: int) -> dict[str, Any]:
    return {"capability": TRASH_CAPABILITY if trash else MY_CAPABILITY,
            "max_page_size": max_page_size,
            "order_by_options": list(ORDER_BY_OPTIONS),
            "order_direction_options": list(ORDER_DIRECTION_OPTIONS)}


def file_response(codec: ids.IdCodec, *, ftype: int, fid: int, name: str, created_at: int,
                  updated_at: int, size: int, metadata: dict[str, str] | None, path: str,
                  capability: str | None, primary_entity: int, owned: bool = True,
                  folder_summary: dict[str, Any] | None = None,
                  extended_info: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": ftype,
        "id": codec.file(fid),
        "name": name,
        "created_at": go_time(created_at),
        "updated_at": go_time(updated_at),
        "size": size,
        "metadata": metadata,
    }
    if path:
        out["path"] = path
    if capability:
        out["capability"] = capability
    if owned:
        out["owned"] = True
    # hashid of entity 0 for folders / entity-less files, like Cloudreve
    out["primary_entity"] = codec.entity(primary_entity)
    if folder_summary is not None:
        out["folder_summary"] = folder_summary
    if extended_info is not None:
        out["extended_info"] = extended_info
    return out


def empty_file_response() -> dict[str, Any]:
    """The zero FileResponse Cloudreve emits as ``parent`` of a trash listing."""
    return {"type": 0, "id": "", "name": "", "created_at": go_time(None), "updated_at": go_time(None),
            "size": 0, "metadata": None}


def group(codec: ids.IdCodec, anonymous: bool) -> dict[str, Any]:
    if anonymous:
        return {"id": codec.encode(ANON_GROUP_ID, ids.GROUP), "name": "Anonymous",
                "permission": boolset(_ANON_GROUP_PERMS)}
    return {"id": codec.encode(USER_GROUP_ID, ids.GROUP), "name": "User",
            "permission": boolset(_USER_GROUP_PERMS), "direct_link_batch_size": 10,
            "trash_retention": TRASH_RETENTION}


def user(codec: ids.IdCodec, row: Any | None) -> dict[str, Any]:
    """``user.BuildUser``; ``row`` None is the anonymous user."""
    if row is None:
        return {"id": codec.user(0), "nickname": "", "created_at": go_time(None), "anonymous": True,
                "group": group(codec, True)}
    return {"id": codec.user(row.id), "email": row.email, "nickname": row.nickname, "status": row.status,
            "created_at": go_time(row.created_at), "group": group(codec, False)}


def user_redacted(codec: ids.IdCodec, row: Any) -> dict[str, Any]:
    return {"id": codec.user(row.id), "nickname": row.nickname, "created_at": go_time(row.created_at)}


def token(pair: Any) -> dict[str, Any]:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "access_expires": go_time(pair.access_expires * 1_000_000),
            "refresh_expires": go_time(pair.refresh_expires * 1_000_000)}
