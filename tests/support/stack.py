"""Provision the real Kafka broker and redis-server for a test session.

In this order: addresses given in the environment (OMNIROUTER_TEST_KAFKA and
OMNIROUTER_TEST_REDIS), testcontainers when a Docker engine answers, else devstack. There is no
skip: a stack that cannot start fails the run, in CI and on a laptop alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from omnirouter.connections import wait_for_kafka, wait_for_redis
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.settings import DevstackSettings

KAFKA_IMAGE = "apache/kafka:4.3.1"
REDIS_IMAGE = "redis:7.4"


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
    wait_for_redis(addresses.redis_url, timeout_s=30)
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


def provision(state_dir: Path) -> tuple[str, contextlib.AbstractContextManager[StackAddresses]]:
    """The source this session's stack comes from, and a context manager that runs it."""
    if os.environ.get("OMNIROUTER_TEST_KAFKA") and os.environ.get("OMNIROUTER_TEST_REDIS"):
        return "environment", _from_environment()
    if docker_engine_answers():
        return "testcontainers", _from_testcontainers()
    return "devstack", _from_devstack(state_dir)
