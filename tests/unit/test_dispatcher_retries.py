"""The dispatcher's retry policy: exponential backoff, capped, and which failures end it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from omnirouter.channels.delivery import Delivery, PermanentDeliveryError, TransientDeliveryError
from omnirouter.pipeline.dispatcher import backoff_delay, backoff_schedule, deliver_with_retries
from omnirouter.settings import OutboundSettings

SETTINGS = OutboundSettings(max_attempts=4, backoff_base_s=0.5, backoff_max_s=30.0)


def test_backoff_doubles_from_the_base() -> None:
    delays = [backoff_delay(n, base_s=0.5, max_s=30.0) for n in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped_by_the_maximum() -> None:
    assert backoff_delay(10, base_s=0.5, max_s=30.0) == 30.0
    assert backoff_delay(10_000, base_s=0.5, max_s=30.0) == 30.0  # no float overflow


def test_schedule_has_one_wait_between_each_pair_of_attempts() -> None:
    assert backoff_schedule(SETTINGS) == [0.5, 1.0, 2.0]
    assert backoff_schedule(OutboundSettings(max_attempts=1)) == []
    capped = OutboundSettings(max_attempts=5, backoff_base_s=1.0, backoff_max_s=3.0)
    assert backoff_schedule(capped) == [1.0, 2.0, 3.0, 3.0]


def scripted(*results: Delivery | Exception) -> tuple[Callable[[], Awaitable[Delivery]], list[int]]:
    """A sender that answers with ``results`` in turn, counting its calls."""
    calls: list[int] = []

    async def attempt() -> Delivery:
        calls.append(1)
        result = results[len(calls) - 1]
        if isinstance(result, Exception):
            raise result
        return result

    return attempt, calls


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_transient_failures_are_retried_with_backoff_until_delivered() -> None:
    attempt, calls = scripted(
        TransientDeliveryError("503"), TransientDeliveryError("503"), Delivery("twilio", "SM1")
    )
    waits = Waits()
    outcome = await deliver_with_retries(attempt, provider="twilio", settings=SETTINGS, sleep=waits)
    assert outcome.delivered and outcome.message_id == "SM1" and outcome.attempts == 3
    assert waits.seconds == [0.5, 1.0]
    assert len(calls) == 3


async def test_a_permanent_failure_is_not_retried() -> None:
    attempt, calls = scripted(PermanentDeliveryError("twilio answered HTTP 400: bad To"))
    waits = Waits()
    outcome = await deliver_with_retries(attempt, provider="twilio", settings=SETTINGS, sleep=waits)
    assert not outcome.delivered and not outcome.exhausted
    assert outcome.reason == "twilio answered HTTP 400: bad To"
    assert (len(calls), waits.seconds) == (1, [])


async def test_transient_failures_give_up_after_max_attempts() -> None:
    attempt, calls = scripted(*[TransientDeliveryError("timed out")] * 4)
    waits = Waits()
    outcome = await deliver_with_retries(attempt, provider="meta", settings=SETTINGS, sleep=waits)
    assert not outcome.delivered and outcome.exhausted
    assert outcome.reason == "gave up after 4 attempts: timed out"
    assert len(calls) == 4
    assert waits.seconds == [0.5, 1.0, 2.0]  # no wait after the last attempt


async def test_a_senders_bug_is_a_permanent_failure_not_a_crash() -> None:
    attempt, _ = scripted(KeyError("sid"))
    outcome = await deliver_with_retries(
        attempt, provider="twilio", settings=SETTINGS, sleep=Waits()
    )
    assert not outcome.delivered
    assert outcome.reason.startswith("sender error: KeyError")


@pytest.mark.parametrize("status", ["sent", "queued"])
async def test_the_delivery_status_is_kept(status: str) -> None:
    attempt, _ = scripted(Delivery("webchat", "e1", status))
    outcome = await deliver_with_retries(
        attempt, provider="webchat", settings=SETTINGS, sleep=Waits()
    )
    assert outcome.status == status
