"""Capacity (``df``) and the tenant's usage reports (``cloudfs quota``).

Units, as the reference and the emulator's assumptions read them:

* ``GET /space/{ownerId}?type=1``: ``capacity`` and ``spaceUsed`` are
  Strings of **bytes**; the answer also names the user's ``containerId``
  and root folder id.
* ``POST /space/usage/user`` (seed 004): ``quota`` a String and ``used`` a
  Double, both in **KB of 1024 bytes** (the overview page says KB; the
  example quota 1048576 reads as 1 GiB).  Up to 50 ids a call.
* ``GET /space/usage/quota`` (seed 002, paged by ``limit``/``offset``) and
  ``GET /space/usage/overview``: Longs of KB.

``df`` asks usage-by-user for the mount's own user id first (the seeds'
report) and converts KB to bytes; if that is refused (not an admin, say) it
falls back to GetSpace's bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from cloudfs.client.koodrive.wire import Wire
from cloudfs.client.models import Capacity, TierUsage, UsageReport, UserUsage
from cloudfs.errors import BackendRefusal, ProtocolError

log = logging.getLogger(__name__)

KB = 1024
#: userIds per usage-by-user call (the reference's range: 1-50)
MAX_USER_IDS = 50
#: rows asked per page of the usage-by-quota report
QUOTA_PAGE = 100


async def get_space(wire: Wire, user_id: str) -> dict[str, Any]:
    body = await wire.call("GET", f"/space/{user_id}", idempotent=True, what="space", params={"type": 1})
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("space: no data in the answer")
    return data


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise ProtocolError(f"not a number: {value!r}")
    return float(value)


async def users(wire: Wire, user_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Usage-by-user rows for ``user_ids``, asked 50 at a time."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(user_ids), MAX_USER_IDS):
        batch = list(user_ids[start:start + MAX_USER_IDS])
        body = await wire.call("POST", "/space/usage/user", idempotent=True, what="usage by user",
                               json_body={"userIds": batch})
        rows += [row for row in body.get("data") or [] if isinstance(row, dict)]
    return rows


async def quota_tiers(wire: Wire) -> list[dict[str, Any]]:
    """Every row of the usage-by-quota report (paged by limit/offset until ``total``)."""
    rows: list[dict[str, Any]] = []
    while True:
        body = await wire.call("GET", "/space/usage/quota", idempotent=True, what="usage by quota",
                               params={"limit": QUOTA_PAGE, "offset": len(rows)})
        page = [row for row in body.get("data") or [] if isinstance(row, dict)]
        rows += page
        total = body.get("total")
        if not page or not isinstance(total, int) or len(rows) >= total:
            return rows


async def overview(wire: Wire) -> dict[str, Any]:
    body = await wire.call("GET", "/space/usage/overview", idempotent=True, what="usage overview")
    data = body.get("data")
    return data if isinstance(data, dict) else {}


async def capacity(wire: Wire, user_id: str) -> Capacity:
    try:
        for row in await users(wire, [user_id]):
            if str(row.get("userId")) == user_id:
                return Capacity(total=_kb(row.get("quota")), used=_kb(row.get("used")))
        log.debug("usage by user does not list %s; asking GetSpace", user_id)
    except (BackendRefusal, ProtocolError) as exc:
        log.debug("usage by user refused (%s); asking GetSpace", exc)
    data = await get_space(wire, user_id)
    return Capacity(total=int(_number(data.get("capacity"))), used=int(_number(data.get("spaceUsed"))))


def _kb(value: Any) -> int:
    """KB (``used`` has 3 decimals: within half a byte) -> bytes."""
    return round(_number(value) * KB)


def _tier(row: dict[str, Any], quota: bool) -> TierUsage:
    return TierUsage(quota=_kb(row.get("quota")) if quota else None, allocated=_kb(row.get("totalAllocation")),
                     capacity=_kb(row.get("totalCapacity")), used=_kb(row.get("totalUsed")))


async def report(wire: Wire, user_ids: Sequence[str], *, by_quota: bool) -> UsageReport:
    """The tenant view (all in bytes): usage of ``user_ids``, the quota tiers
    if asked, and the overview (left out if the server refuses it)."""
    rows = await users(wire, user_ids)
    people = [UserUsage(user_id=str(r.get("userId") or ""), quota=_kb(r.get("quota")), used=_kb(r.get("used")))
              for r in rows]
    tiers = [_tier(r, True) for r in await quota_tiers(wire)] if by_quota else None
    try:
        whole: TierUsage | None = _tier(await overview(wire), False)
    except (BackendRefusal, ProtocolError) as exc:
        log.info("no usage overview: %s", exc)
        whole = None
    return UsageReport(users=people, tiers=tiers, overview=whole)
