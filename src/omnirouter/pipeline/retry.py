"""Waiting out Redis and Kafka outages without losing or skipping anything."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiokafka.errors
import kafka.errors
import redis.exceptions
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.errors import KafkaTimeoutError as AioKafkaTimeoutError
from faust.exceptions import ProducerSendError
from kafka.errors import KafkaError as KafkaPythonError

from omnirouter.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)

# Failures that pass: a restarting Redis, a Redis Cluster failing over, a broker moving
# leadership. Anything else is a bug or bad data, and is handled by isolating the event that
# causes it, not by retrying forever.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    # Redis Cluster, while a replica takes over its master's slots: CLUSTERDOWN, MASTERDOWN,
    # "TTL exhausted" (MOVED followed too often), and slots the client's map has no node for.
    # redis-py follows single MOVED/ASK redirections itself.
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
    ConnectionError,
    TimeoutError,
    KafkaPythonError,
    # aiokafka is faust's transport; its errors are transient in the same way.
    AioKafkaError,
)
# Kafka's answers that no wait changes: a refused authorization (ACLs, SASL) and a record the
# broker will never take. Both Kafka libraries' errors count as transient above; these would
# stall a stage forever, retrying with warnings, so they surface instead (the batch goes to the
# dead-letter topic with the reason, and can be replayed once the cause is fixed).
NEVER_PASSING_ERRORS: tuple[type[BaseException], ...] = (
    aiokafka.errors.TopicAuthorizationFailedError,
    aiokafka.errors.GroupAuthorizationFailedError,
    aiokafka.errors.ClusterAuthorizationFailedError,
    aiokafka.errors.TransactionalIdAuthorizationFailed,
    aiokafka.errors.SaslAuthenticationFailed,
    aiokafka.errors.AuthenticationFailedError,
    aiokafka.errors.MessageSizeTooLargeError,
    aiokafka.errors.RecordTooLargeError,
    aiokafka.errors.RecordListTooLargeError,
    kafka.errors.AuthorizationError,
    kafka.errors.TopicAuthorizationFailedError,
    kafka.errors.GroupAuthorizationFailedError,
    kafka.errors.ClusterAuthorizationFailedError,
    kafka.errors.TransactionalIdAuthorizationFailedError,
    kafka.errors.SaslAuthenticationFailedError,
    kafka.errors.MessageSizeTooLargeError,
    kafka.errors.RecordListTooLargeError,
)
# What a send wrapped by faust may fail with and still succeed later (aiokafka marks its
# timeout not retriable: it is, once the broker answers again).
_SEND_TIMEOUTS = (AioKafkaTimeoutError, ConnectionError, TimeoutError)


# redis-py (8.1) closes a Redis Cluster node's connections when one command on them fails; a
# command another task is sending on one of them at that moment finds its stream gone and
# fails with AttributeError ("'NoneType' object has no attribute 'writelines'") instead of a
# ConnectionError. Seen in CI during a master kill: the batch went to the dead-letter topic.
_REDIS_CONNECTION_MODULE = "redis/asyncio/connection.py"


def is_redis_connection_race(exc: BaseException) -> bool:
    """An AttributeError raised inside redis-py's connection code on a connection that another
    task closed: a connection failure, not a bug of ours."""
    if not isinstance(exc, AttributeError) or exc.__traceback__ is None:
        return False
    where = traceback.extract_tb(exc.__traceback__)[-1].filename
    return where.replace("\\", "/").endswith(_REDIS_CONNECTION_MODULE)


def is_transient(exc: BaseException) -> bool:
    """A failure that passes by itself: worth retrying, never worth a dead letter."""
    if isinstance(exc, NEVER_PASSING_ERRORS):
        return False
    if isinstance(exc, TRANSIENT_ERRORS) or is_redis_connection_race(exc):
        return True
    # faust wraps its producer's errors ("Error while sending: ..."). A broker that hung for
    # longer than the produce timeout surfaced as one, caused by aiokafka's
    # UnknownTopicOrPartitionError, and the whole batch went to the dead-letter topic. Only
    # causes that can pass are retried: a refused authorization, a closed producer or a record
    # too large would be retried forever.
    if not isinstance(exc, ProducerSendError):
        return False
    cause = exc.__cause__
    return isinstance(cause, _SEND_TIMEOUTS) or bool(getattr(cause, "retriable", False))


async def until_it_succeeds(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_backoff_s: float,
    first_backoff_s: float = 0.05,
) -> T:
    """Run ``operation`` until it succeeds, backing off exponentially on transient errors.

    The caller's offsets are not committed meanwhile, so the stream pauses instead of skipping:
    a Redis restart costs latency, never an event.
    """
    backoff = first_backoff_s
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            log.warning(
                "retrying",
                what=what,
                attempt=attempt,
                error=f"{type(exc).__name__}: {exc}",
                backoff_s=round(backoff, 3),
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
