"""``Client.usage`` (what ``cloudfs quota`` shows) on Cloudreve: the one
logged-in user's capacity; tenant reports are KooDrive's (test_koodrive.py)."""

from __future__ import annotations

import errno

import pytest

from cloudfs.errors import CloudfsError

#: also on the KooDrive emulator (tests/dialects.py); skips name what KooDrive lacks
ON_KOODRIVE = True


async def test_usage_is_the_logged_in_users_capacity(client, dialect):
    capacity = await client.capacity()
    report = await client.usage()
    assert [(u.quota, u.used) for u in report.users] == [(capacity.total, capacity.used)]
    if dialect == "koodrive":  # tenant reports too: the user named by id, the overview, tiers on request
        assert report.users[0].user_id and report.overview is not None
        assert (await client.usage(by_quota=True)).tiers
        return
    assert report.users[0].user_id == ""
    assert report.tiers is None and report.overview is None
    with pytest.raises(CloudfsError) as info:
        await client.usage(by_quota=True)
    assert info.value.errno == errno.EOPNOTSUPP
