"""Signed-URL cache and token renewal logic, driven by plain coroutines
(no HTTP): cloudfs.client.urlcache, cloudfs.client.auth."""

import time

import pytest
import trio

from cloudfs.client.auth import BearerAuth, Tokens
from cloudfs.client.dialect import SignedUrl
from cloudfs.client.models import Entry
from cloudfs.client.urlcache import UrlCache
from cloudfs.errors import AuthenticationError, TransportError
from cloudfs.client.cloudreve_codes import CloudreveError


def entry(version="v1", file_id="f1"):
    return Entry(file_id=file_id, path="/a", is_dir=False, size=10, mtime_ns=0, ctime_ns=0, version=version)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_urls_cached_per_file_and_version():
    clock = FakeClock()
    signed = []

    async def sign(e):
        signed.append(e.version)
        return SignedUrl(f"https://h/{e.file_id}/{e.version}/{len(signed)}", clock.now + 3600)

    cache = UrlCache(sign, clock=clock)
    u1 = await cache.get(entry("v1"))
    assert await cache.get(entry("v1")) == u1
    u2 = await cache.get(entry("v2"))
    assert u2 != u1 and signed == ["v1", "v2"]
    # renewed shortly before expiry (margin 60 s)
    clock.now += 3600 - 30
    assert await cache.get(entry("v1")) != u1
    assert signed == ["v1", "v2", "v1"]


async def test_short_lived_urls_use_a_proportional_margin():
    clock = FakeClock()

    async def sign(e):
        return SignedUrl("https://h/x", clock.now + 40)

    cache = UrlCache(sign, clock=clock)
    await cache.get(entry())
    clock.now += 25  # 40 s life, 10 s margin: still good
    assert cache.cached(entry()) is not None
    clock.now += 6
    assert cache.cached(entry()) is None


async def test_invalidate_only_drops_the_refused_url():
    n = 0

    async def sign(e):
        nonlocal n
        n += 1
        return SignedUrl(f"https://h/{n}", time.time() + 3600)

    cache = UrlCache(sign)
    first = await cache.get(entry())
    cache.invalidate(entry(), "https://h/other")
    assert await cache.get(entry()) == first
    cache.invalidate(entry(), first)
    assert await cache.get(entry()) != first


async def test_parallel_readers_share_one_signing():
    calls = 0

    async def sign(e):
        nonlocal calls
        calls += 1
        await trio.sleep(0.01)
        return SignedUrl("https://h/x", time.time() + 3600)

    cache = UrlCache(sign)
    results = []

    async def get():
        results.append(await cache.get(entry()))

    async with trio.open_nursery() as n:
        for _ in range(10):
            n.start_soon(get)
    assert calls == 1 and len(set(results)) == 1


def tokens(access="a1", life=3600.0):
    now = time.time()
    return Tokens(access, "refresh-" + access, now + life, now + 86400, issued_at=now)


async def test_bearer_refreshes_before_expiry():
    seen = []

    async def refresh(rt):
        seen.append(rt)
        return tokens("a2")

    auth = BearerAuth(tokens("a1", life=10.0), refresh=refresh)  # 20% margin = 2 s
    assert (await auth.headers())["Authorization"] == "Bearer a1"
    auth.tokens = Tokens("a1", "refresh-a1", time.time() + 1.0, time.time() + 100, issued_at=time.time() - 9)
    assert (await auth.headers())["Authorization"] == "Bearer a2"
    assert seen == ["refresh-a1"]


async def test_bearer_one_refresh_for_many_rejections():
    calls = 0

    async def refresh(rt):
        nonlocal calls
        calls += 1
        await trio.sleep(0.01)
        return tokens(f"a{calls + 1}")

    persisted = []

    async def persist(t):
        persisted.append(t.access_token)

    auth = BearerAuth(tokens("a1"), refresh=refresh, persist=persist)
    sent = await auth.headers()
    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(auth.rejected, sent)
    assert calls == 1 and auth.renewals == 1 and persisted == ["a2"]
    assert (await auth.headers())["Authorization"] == "Bearer a2"


async def test_bearer_falls_back_to_password_or_fails():
    async def refresh(rt):
        raise CloudreveError(40020, "Failed to issue token pair")

    async def relogin():
        return tokens("fresh")

    auth = BearerAuth(tokens("a1"), refresh=refresh, relogin=relogin)
    await auth.rejected({"Authorization": "Bearer a1"})
    assert auth.tokens.access_token == "fresh"

    stuck = BearerAuth(tokens("a1"), refresh=refresh)
    with pytest.raises(AuthenticationError) as info:
        await stuck.rejected({"Authorization": "Bearer a1"})
    assert "refresh-a1" not in str(info.value)


async def test_bearer_keeps_a_valid_token_when_the_server_is_unreachable():
    async def refresh(rt):
        raise TransportError("refused", maybe_delivered=False)

    now = time.time()
    auth = BearerAuth(Tokens("a1", "r1", now + 5, now + 100, issued_at=now - 100), refresh=refresh)
    assert (await auth.headers())["Authorization"] == "Bearer a1"  # due, refresh failed, still valid
    with pytest.raises(TransportError):
        await auth.rejected({"Authorization": "Bearer a1"})
