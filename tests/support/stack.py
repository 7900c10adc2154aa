"""Provision the real Kafka broker and redis-server for a test session.

In this order: addresses given in the environment (OMNIROUTER_TEST_KAFKA and
OMNIROUTER_TEST_REDIS), testcontainers when a Docker engine answers, else devstack. There is no
skip: a stack that cannot start fails the run, in CI and on a laptop alike.

With OMNIROUTER_TEST_REDIS_CLUSTER=1 Redis is a 6-node Redis Cluster started by devstack (or the
cluster node OMNIROUTER_TEST_REDIS names), and every Redis client the tests make through
:func:`async_redis` / :func:`sync_redis` is a cluster client: the same suites then prove the
router on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from omnirouter.connections import wait_for_kafka, wait_for_redis
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.devstack.redis_cluster import RedisClusterStack
from omnirouter.security import redis_client, redis_sync_client
from omnirouter.settings import DevstackSettings, RedisSettings

KAFKA_IMAGE = "apache/kafka:4.3.1"
REDIS_IMAGE = "redis:7.4"

REDIS_CLUSTER = os.environ.get("OMNIROUTER_TEST_REDIS_CLUSTER") == "1"
"""True when this session's Redis is a Redis Cluster."""
REDIS_MASTERS = 3 if REDIS_CLUSTER else 1
"""Redis servers that hold data: a pipelined batch is at most one round trip to each."""


def redis_settings() -> RedisSettings:
    """The Redis settings of this session's kind of Redis (single node or cluster)."""
    return RedisSettings(cluster=REDIS_CLUSTER)


def async_redis(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for the session's Redis, made as the router makes its own."""
    return redis_client(redis_settings(), url, **options)


def sync_redis(url: str, **options: Any) -> redis.Redis:
    """A synchronous client for the session's Redis."""
    return redis_sync_client(redis_settings(), url, **options)


def redis_env() -> dict[str, str]:
    """Environment for router processes started by a test, for this session's kind of Redis."""
    return {"OMNIROUTER_REDIS__CLUSTER": "true"} if REDIS_CLUSTER else {}


def docker_engine_answers() -> bool:
    """True when a Docker engine (not merely the client) answers a ping."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker  # type: ignore[import-untyped]  # installed with testcontainers
    except ImportError:
        return False
    try:
        return bool(docker.from_env(timeout=3).ping())
    except Exception:
        return False


@contextlib.contextmanager
def _from_environment() -> Iterator[StackAddresses]:
    addresses = StackAddresses(
        os.environ["OMNIROUTER_TEST_KAFKA"], os.environ["OMNIROUTER_TEST_REDIS"]
    )
    wait_for_kafka(addresses.kafka_bootstrap_servers, timeout_s=30)
    wait_for_redis(addresses.redis_url, timeout_s=30, security=redis_settings())
    yield addresses


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[StackAddresses]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, RedisContainer(REDIS_IMAGE) as redis:
        host = redis.get_container_host_ip()
        port = redis.get_exposed_port(6379)
        yield StackAddresses(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0")


@contextlib.contextmanager
def _from_devstack(state_dir: Path) -> Iterator[StackAddresses]:
    # Tied to the test process: even a killed pytest leaves no broker or redis-server behind.
    stack = DevStack(DevstackSettings(state_dir=state_dir), tie_to_parent=True)
    try:
        yield stack.up()
    finally:
        stack.down()


@contextlib.contextmanager
def _from_devstack_with_redis_cluster(state_dir: Path) -> Iterator[StackAddresses]:
    # devstack's own broker (and its single redis-server, unused), plus a Redis Cluster.
    cluster = RedisClusterStack(state_dir / "redis-cluster", tie_to_parent=True)
    with _from_devstack(state_dir) as single:
        try:
            yield StackAddresses(single.kafka_bootstrap_servers, cluster.up())
        finally:
            cluster.down()


def provision(state_dir: Path) -> tuple[str, contextlib.AbstractContextManager[StackAddresses]]:
    """The source this session's stack comes from, and a context manager that runs it."""
    if REDIS_CLUSTER and not os.environ.get("OMNIROUTER_TEST_REDIS"):
        return "devstack with a Redis Cluster", _from_devstack_with_redis_cluster(state_dir)
    if os.environ.get("OMNIROUTER_TEST_KAFKA") and os.environ.get("OMNIROUTER_TEST_REDIS"):
        return "environment", _from_environment()
    if docker_engine_answers():
        return "testcontainers", _from_testcontainers()
    return "devstack", _from_devstack(state_dir)


READINESS_GROUP = "omnirouter-tests-coordinator-ready"


def wait_for_group_coordinator(bootstrap_servers: str, *, timeout_s: float = 60) -> None:
    """Until the broker answers FindCoordinator for a consumer group.

    A new broker creates ``__consumer_offsets`` on the first such request and answers
    COORDINATOR_NOT_AVAILABLE until it has. Whichever test first touches a group would meet
    that; with two test processes, each starting its own broker, a test that commits offsets
    through the admin client came first in one of them.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorNotAvailableError, NodeNotReadyError

    from support.waiting import eventually

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=READINESS_GROUP)

    def answers() -> bool:
        try:
            admin.describe_groups([READINESS_GROUP])
        except (CoordinatorNotAvailableError, NodeNotReadyError):
            return False
        return True

    try:
        eventually(answers, timeout_s=timeout_s, what="the broker's group coordinator")
    finally:
        admin.close()
