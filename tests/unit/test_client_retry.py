"""Retry policy: backoff, classification, the retry loop and its deadline
(cloudfs.client.retry).  The operations here are plain coroutines raising
cloudfs errors: no HTTP involved."""

import errno

import pytest
import trio

from cloudfs.client.retry import AttemptState, RetryPolicy, full_jitter, give_up_error, retrying, should_retry
from cloudfs.errors import (
    NameTooLong,
    ProtocolError,
    RequestTimeout,
    ServerError,
    TLSFailure,
    TransportError,
)
from cloudfs.client.cloudreve_codes import CloudreveError


def test_full_jitter_bounds():
    assert full_jitter(1, 0.2, 5.0, rand=lambda: 1.0) == pytest.approx(0.2)
    assert full_jitter(2, 0.2, 5.0, rand=lambda: 1.0) == pytest.approx(0.4)
    assert full_jitter(4, 0.2, 5.0, rand=lambda: 1.0) == pytest.approx(1.6)
    assert full_jitter(10, 0.2, 5.0, rand=lambda: 1.0) == pytest.approx(5.0)  # capped
    assert full_jitter(1000, 0.2, 5.0, rand=lambda: 1.0) == pytest.approx(5.0)  # no overflow
    assert full_jitter(3, 0.2, 5.0, rand=lambda: 0.0) == 0.0


def test_full_jitter_is_spread_out():
    delays = [full_jitter(5, 0.2, 5.0) for _ in range(500)]
    assert all(0 <= d <= 3.2 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 2.7  # uniform over [0, 3.2]


def test_full_jitter_rejects_attempt_zero():
    with pytest.raises(ValueError):
        full_jitter(0, 0.2, 5.0)


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (TransportError("reset"), True, True),
        (TransportError("reset"), False, False),  # may have been delivered
        (TransportError("refused", maybe_delivered=False), False, True),  # never sent
        (RequestTimeout("slow"), True, True),
        (RequestTimeout("slow"), False, False),
        (RequestTimeout("connect", maybe_delivered=False), False, True),
        (ServerError("502", status=502), True, True),
        (ServerError("502", status=502), False, False),
        (ProtocolError("garbage"), True, True),
        (ProtocolError("garbage"), False, False),
        (CloudreveError(40073, "lock"), False, True),  # refused before doing anything
        (CloudreveError(409, "conflict"), True, True),
        (CloudreveError(40016, "missing"), True, False),
        (CloudreveError(40004, "exists"), True, False),
        (CloudreveError(50001, "db"), True, False),
        (TLSFailure("bad certificate"), True, False),
        (NameTooLong("x"), True, False),
        (ValueError("bug"), True, False),
    ],
)
def test_should_retry(exc, idempotent, expected):
    assert should_retry(exc, idempotent) is expected


def test_give_up_error_prefers_unreachable_server():
    refused = TransportError("refused", maybe_delivered=False)
    assert give_up_error("x", 1.0, refused) is refused
    timeout = give_up_error("x", 1.0, ServerError("503", status=503))
    assert isinstance(timeout, RequestTimeout) and timeout.errno == errno.ETIMEDOUT
    assert isinstance(give_up_error("x", 1.0, None), RequestTimeout)


FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.01, deadline_s=5.0)


async def test_retrying_succeeds_after_transient_failures():
    calls = []

    async def op(state: AttemptState) -> str:
        calls.append((state.number, state.maybe_delivered))
        if len(calls) < 3:
            raise TransportError("reset")
        return "ok"

    assert await retrying(op, policy=FAST, idempotent=True, what="t") == "ok"
    assert calls == [(1, False), (2, True), (3, True)]


async def test_retrying_tracks_undelivered_attempts():
    seen = []

    async def op(state: AttemptState) -> None:
        seen.append(state.maybe_delivered)
        if len(seen) == 1:
            raise TransportError("refused", maybe_delivered=False)
        if len(seen) == 2:
            raise CloudreveError(40073, "locked")  # a refusal: nothing done either
        return None

    await retrying(op, policy=FAST, idempotent=False, what="t")
    assert seen == [False, False, False]


async def test_retrying_gives_up_after_max_attempts():
    calls = 0

    async def op(state: AttemptState) -> None:
        nonlocal calls
        calls += 1
        raise ServerError("503", status=503)

    with pytest.raises(ServerError):
        await retrying(op, policy=FAST, idempotent=True, what="t")
    assert calls == 4


async def test_retrying_does_not_retry_permanent_errors():
    calls = 0

    async def op(state: AttemptState) -> None:
        nonlocal calls
        calls += 1
        raise CloudreveError(40016, "Path not exist")

    with pytest.raises(CloudreveError) as info:
        await retrying(op, policy=FAST, idempotent=True, what="t")
    assert calls == 1 and info.value.errno == errno.ENOENT


async def test_retrying_non_idempotent_only_when_unsent():
    calls = 0

    async def op(state: AttemptState) -> None:
        nonlocal calls
        calls += 1
        raise TransportError("reset after sending")

    with pytest.raises(TransportError):
        await retrying(op, policy=FAST, idempotent=False, what="t")
    assert calls == 1


async def test_retrying_deadline_interrupts_a_hanging_attempt(autojump_clock):
    async def op(state: AttemptState) -> None:
        await trio.sleep_forever()

    policy = RetryPolicy(max_attempts=5, backoff_base_s=0.1, backoff_max_s=1.0, deadline_s=3.0)
    start = trio.current_time()
    with pytest.raises(RequestTimeout) as info:
        await retrying(op, policy=policy, idempotent=True, what="stat /x")
    assert trio.current_time() - start == pytest.approx(3.0)
    assert info.value.errno == errno.ETIMEDOUT
    assert "stat /x" in str(info.value)


async def test_retrying_deadline_bounds_backoff(autojump_clock):
    async def op(state: AttemptState) -> None:
        raise TransportError("refused", maybe_delivered=False)

    policy = RetryPolicy(max_attempts=1000, backoff_base_s=1.0, backoff_max_s=60.0, deadline_s=10.0)
    start = trio.current_time()
    with pytest.raises(TransportError) as info:
        await retrying(op, policy=policy, idempotent=True, what="t")
    assert trio.current_time() - start <= 10.0 + 1e-6
    assert info.value.errno == errno.EIO  # a dead server stays EIO, not a timeout


async def test_retrying_lets_cancellation_through():
    async def op(state: AttemptState) -> None:
        await trio.sleep_forever()

    with trio.move_on_after(0.05) as scope:
        await retrying(op, policy=FAST, idempotent=True, what="t")
    assert scope.cancelled_caught
