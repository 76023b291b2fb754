"""When to try a request again, how long to wait, and the hard deadline.

Owns the retry policy of the whole client (dialect-independent):

* which failures are retryable (:func:`should_retry`): for an *idempotent*
  request any transient failure (connection error, timeout, HTTP 5xx/429, a
  garbled body); for a non-idempotent one only failures that provably had no
  effect: a connection that was never established, or a
  :class:`LockConflict` (the backend's table says which codes), which the
  server reports before doing anything;
* exponential backoff with full jitter (:func:`full_jitter`), bounded in
  attempts (``max_attempts``) and in time (``deadline_s``);
* the deadline itself: the whole call, retries and waits included, runs under
  ``trio.move_on_after``; running out gives ``RequestTimeout`` (ETIMEDOUT), or
  the last ``TransportError`` (EIO) when the server was unreachable anyway.

A request whose retry is only safe with some reconciliation (mkdir: a second
try may meet the folder the first one created) is retried as idempotent and
the operation itself looks at :attr:`AttemptState.maybe_delivered`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import trio
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, stop_before_delay
from tenacity.retry import retry_if_exception

from cloudfs.errors import (
    CloudfsError,
    LockConflict,
    ProtocolError,
    RequestTimeout,
    ServerError,
    TLSFailure,
    TransportError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    deadline_s: float = 30.0


@dataclass(slots=True)
class AttemptState:
    """What an operation may want to know about the attempts before this one."""

    #: 1 for the first try
    number: int = 0
    #: an earlier attempt may have reached the server and taken effect
    maybe_delivered: bool = False
    last_error: CloudfsError | None = None


def full_jitter(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based):
    uniform in [0, min(cap, base * 2**(attempt-1))] ("full jitter", which
    spreads out clients that failed together better than equal jitter)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    ceiling = min(cap, base * (2 ** min(attempt - 1, 62)))
    return max(0.0, ceiling * rand())


def should_retry(exc: BaseException, idempotent: bool) -> bool:
    """Whether ``exc`` (from one attempt) is worth another attempt."""
    if isinstance(exc, LockConflict):
        # the server refused before doing anything: safe for every request
        return True
    if isinstance(exc, TLSFailure):
        return False  # a certificate does not get better by asking again
    if isinstance(exc, TransportError):  # incl. RequestTimeout, ServerError
        # never connected: the request cannot have had an effect
        return idempotent or not exc.maybe_delivered
    if isinstance(exc, ProtocolError):
        # a garbled answer: the request did reach the server
        return idempotent
    return False


def give_up_error(what: str, deadline: float, last: CloudfsError | None) -> CloudfsError:
    """The error for a call that ran out of time: the last transport error
    if that is what kept failing (a refused connection stays EIO, and the
    message says why), else a timeout."""
    if isinstance(last, TransportError) and not isinstance(last, RequestTimeout | ServerError):
        return last
    detail = f" (last error: {last})" if last is not None else ""
    return RequestTimeout(f"{what}: no answer within {deadline:g} s{detail}")


async def retrying(
    op: Callable[[AttemptState], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    what: str,
    deadline: float | None = None,
) -> T:
    """Run ``op`` until it succeeds, fails for good, runs out of attempts or
    the deadline passes (``policy.deadline_s`` unless ``deadline`` is given:
    bulk transfers pass one sized to the bytes they move)."""
    limit = policy.deadline_s if deadline is None else deadline
    state = AttemptState()
    started = trio.current_time()

    def wait(rs: RetryCallState) -> float:
        delay = full_jitter(rs.attempt_number, policy.backoff_base_s, policy.backoff_max_s)
        remaining = started + limit - trio.current_time()
        return max(0.0, min(delay, remaining))

    def before_sleep(rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        log.info("%s failed (%s), retrying in %.2f s (attempt %d of %d)",
                 what, exc, rs.upcoming_sleep, rs.attempt_number + 1, policy.max_attempts)

    machine = AsyncRetrying(
        sleep=trio.sleep,
        stop=stop_after_attempt(max(1, policy.max_attempts)) | stop_before_delay(limit),
        wait=wait,
        retry=retry_if_exception(lambda e: should_retry(e, idempotent)),
        before_sleep=before_sleep,
        reraise=True,
    )
    with trio.move_on_after(limit):
        async for attempt in machine:
            with attempt:
                state.number = attempt.retry_state.attempt_number
                try:
                    return await op(state)
                except CloudfsError as exc:
                    state.last_error = exc
                    # an envelope error is a refusal (nothing done); a broken
                    # connection or a garbled answer leaves it open whether
                    # the server acted on the request
                    if isinstance(exc, ProtocolError) or (isinstance(exc, TransportError) and exc.maybe_delivered):
                        state.maybe_delivered = True
                    raise
    raise give_up_error(what, limit, state.last_error)
