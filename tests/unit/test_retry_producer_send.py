"""faust wraps its producer's failures in ProducerSendError: one caused by a broker that did not
answer in time is retried like the Kafka error inside it, not dead-lettered; one caused by
anything else still surfaces at once. Kafka errors raised unwrapped are retried unless no wait
can change them (a refused authorization, a record too large)."""

from __future__ import annotations

import kafka.errors
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    ProducerClosed,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from faust.exceptions import ProducerSendError

from omnirouter.pipeline.retry import until_it_succeeds


def _send_failure(cause: Exception) -> ProducerSendError:
    # As faust's aiokafka Producer.send raises it ("Error while sending: ...").
    try:
        try:
            raise cause
        except Exception as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    except ProducerSendError as wrapped:
        return wrapped


async def test_a_send_that_timed_out_on_a_hung_broker_is_retried() -> None:
    # aiokafka gives up waiting for the topic's metadata after the produce timeout.
    attempts = 0

    async def operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise _send_failure(UnknownTopicOrPartitionError())
        return "published"

    result = await until_it_succeeds(
        operation, what="test", max_backoff_s=0.01, first_backoff_s=0.001
    )
    assert (result, attempts) == ("published", 3)


async def test_a_send_that_timed_out_in_the_producer_is_retried() -> None:
    # aiokafka marks its KafkaTimeoutError not retriable; against a broker that answers again
    # later, it is.
    assert await _attempts_until_published(KafkaTimeoutError()) == 2


@pytest.mark.parametrize(
    "cause",
    [TopicAuthorizationFailedError(), ProducerClosed(), MessageSizeTooLargeError()],
    ids=["authorization refused", "producer closed", "record too large"],
)
async def test_a_send_failure_that_cannot_pass_surfaces_at_once(cause: Exception) -> None:
    attempts = 0

    async def operation() -> None:
        nonlocal attempts
        attempts += 1
        raise _send_failure(cause)

    with pytest.raises(ProducerSendError):
        await until_it_succeeds(operation, what="test", max_backoff_s=0.01)
    assert attempts == 1


async def _attempts_until_published(cause: Exception) -> int:
    attempts = 0

    async def operation() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise _send_failure(cause)

    await until_it_succeeds(operation, what="test", max_backoff_s=0.01, first_backoff_s=0.001)
    return attempts


@pytest.mark.parametrize(
    "error",
    [
        TopicAuthorizationFailedError(),
        MessageSizeTooLargeError(),
        kafka.errors.TopicAuthorizationFailedError(),
        kafka.errors.SaslAuthenticationFailedError(),
    ],
    ids=["aiokafka authorization", "aiokafka too large", "kafka-python authorization", "sasl"],
)
async def test_a_kafka_refusal_raised_unwrapped_surfaces_at_once(error: Exception) -> None:
    """A send's future (or kafka-python) raises the broker's answer as it is, not wrapped by
    faust: a refusal no wait changes stops the retries instead of stalling the stage."""
    attempts = 0

    async def operation() -> None:
        nonlocal attempts
        attempts += 1
        raise error

    with pytest.raises(type(error)):
        await until_it_succeeds(operation, what="test", max_backoff_s=0.01)
    assert attempts == 1


@pytest.mark.parametrize(
    "error",
    [
        UnknownTopicOrPartitionError(),
        NotLeaderForPartitionError(),
        KafkaTimeoutError(),
        KafkaConnectionError(),
        kafka.errors.KafkaConnectionError(),
    ],
    ids=["unknown topic", "leader moved", "timeout", "connection", "kafka-python connection"],
)
async def test_a_kafka_error_raised_unwrapped_that_passes_is_retried(error: Exception) -> None:
    attempts = 0

    async def operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise error
        return "published"

    result = await until_it_succeeds(
        operation, what="test", max_backoff_s=0.01, first_backoff_s=0.001
    )
    assert (result, attempts) == ("published", 3)
