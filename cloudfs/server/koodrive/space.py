"""Space: ``GET /space/{ownerId}`` (per user, how a client learns its
``containerId``) and the tenant reports of the seeds, ``POST
/space/usage/user`` (seed 004), ``GET /space/usage/quota`` (seed 002), and
``GET /space/usage/overview``.

Units (assumptions ``space_unit``/``usage_unit``/``kb_bytes``): GetSpace's
``capacity``/``spaceUsed`` Strings are bytes; the usage endpoints speak KB
(1024 bytes), as the overview page says: ``quota`` a String of whole KB,
``used`` a Double of KB, the ``total*`` Longs whole KB.  The emulator's
tenant is its one account: the quota tier is ``--capacity``, the tenant's
total capacity the sum of its users' quotas.
"""

from __future__ import annotations

from typing import Any

from ..db import User
from . import errors as E
from .context import KooCtx
from .tree import iso_time

YEAR_US = 365 * 86400 * 1_000_000
MAX_USER_IDS = 50


def _unit(kc: KooCtx, which: str) -> int:
    unit = kc.rt.switches.space_unit if which == "space" else kc.rt.switches.usage_unit
    return kc.rt.switches.kb_bytes if unit == "KB" else 1


async def get_space(kc: KooCtx, owner_id: str) -> dict[str, Any]:
    q = kc.request.query_params
    if q.get("type") != "1":
        raise E.bad("type must be 1 (personal space)")
    if owner_id != kc.rt.key_of(kc.me):
        raise E.KooError(E.NO_PERMISSION)
    if q.get("containerId") not in (None, kc.rt.container_id):
        raise E.KooError(E.NOT_IN_SPACE)
    unit = _unit(kc, "space")
    tree = kc.tree
    return {"data": {
        "type": 1, "status": 1, "ownerId": owner_id, "containerId": kc.rt.container_id,
        "bizRootFileId": tree.fid(tree.root(kc.me)), "bizSboxFileId": "",
        "capacity": str(kc.rt.capacity_bytes() // unit), "spaceUsed": str(kc.tree.used_bytes(kc.me) // unit),
    }}


def _user_usage(kc: KooCtx, user: User) -> dict[str, Any]:
    unit = _unit(kc, "usage")
    return {"quota": str(kc.rt.capacity_bytes() // unit), "userId": kc.rt.key_of(user),
            "used": round(kc.tree.used_bytes(user) / unit, 3),
            "createTime": iso_time(user.created_at), "effectiveTime": iso_time(user.created_at),
            "expirationTime": iso_time(user.created_at + 100 * YEAR_US)}


def _paging(values: dict[str, Any]) -> tuple[int, int | None]:
    try:
        offset = int(values.get("offset") or 0)
        limit = int(values["limit"]) if values.get("limit") not in (None, "") else None
    except (TypeError, ValueError):
        raise E.bad("limit/offset is invalid") from None
    if offset < 0 or (limit is not None and limit < 1):
        raise E.bad("limit/offset is invalid")
    return offset, limit


async def usage_by_user(kc: KooCtx) -> dict[str, Any]:
    ids = kc.body.get("userIds")
    offset, limit = _paging(kc.body)
    if ids is not None and (not isinstance(ids, list) or not 1 <= len(ids) <= MAX_USER_IDS
                            or not all(isinstance(i, str) for i in ids)):
        raise E.bad("userIds holds 1 to 50 ids")
    users = [kc.rt.user] if ids is None else [u for u in (kc.rt.user_by_key(i) for i in dict.fromkeys(ids)) if u]
    rows = [_user_usage(kc, u) for u in users]
    end = None if limit is None else offset + limit
    return {"data": rows[offset:end], "total": len(rows)}


def _tiers(kc: KooCtx) -> list[dict[str, Any]]:
    unit = _unit(kc, "usage")
    users = [kc.rt.user]
    quota = kc.rt.capacity_bytes()
    allocated = quota * len(users)
    return [{"quota": str(quota // unit), "totalAllocation": allocated // unit,
             "totalCapacity": allocated // unit,
             "totalUsed": sum(kc.tree.used_bytes(u) for u in users) // unit}]


async def usage_by_quota(kc: KooCtx) -> dict[str, Any]:
    offset, limit = _paging(dict(kc.request.query_params))
    tiers = _tiers(kc)
    end = None if limit is None else offset + limit
    return {"data": tiers[offset:end], "total": len(tiers)}


async def usage_overview(kc: KooCtx) -> dict[str, Any]:
    tiers = _tiers(kc)
    return {"data": {"totalAllocation": sum(t["totalAllocation"] for t in tiers),
                     "totalCapacity": sum(t["totalCapacity"] for t in tiers),
                     "totalUsed": sum(t["totalUsed"] for t in tiers)}}
