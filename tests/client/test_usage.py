"""``Client.usage`` (what ``cloudfs quota`` shows) on Cloudreve: the one
logged-in user's capacity; tenant reports are KooDrive's (test_koodrive.py)."""

from __future__ import annotations

import errno

import pytest

from cloudfs.errors import CloudfsError


async def test_usage_is_the_logged_in_users_capacity(client):
    capacity = await client.capacity()
    report = await client.usage()
    assert [(u.user_id, u.quota, u.used) for u in report.users] == [("", capacity.total, capacity.used)]
    assert report.tiers is None and report.overview is None
    with pytest.raises(CloudfsError) as info:
        await client.usage(by_quota=True)
    assert info.value.errno == errno.EOPNOTSUPP
