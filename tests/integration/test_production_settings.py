"""Production settings on real servers: a redis-server that only admits an ACL user, and the
cluster's replication settings applied to the catalogue on the real broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from omnirouter.connections import create_producer, ensure_topics, wait_for_redis
from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.devstack.processes import start_tied
from omnirouter.errors import ServiceUnreachableError
from omnirouter.runtime import catalogue_topics
from omnirouter.security import redis_client_options
from omnirouter.settings import KafkaSettings, RedisSettings, Settings
from support.waiting import eventually

pytestmark = pytest.mark.integration

ACL_PASSWORD = "acl-pa55-that-must-never-print"
WRONG_PASSWORD = "not-the-password"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server whose default user is off: only ``omnirouter`` with its password gets in."""
    where = tmp_path_factory.mktemp("acl-redis")
    port = free_port()
    config = where / "redis.conf"
    config.write_text(
        f'bind 127.0.0.1\nport {port}\ndir {where}\nsave ""\nappendonly no\n'
        "user default off\n"
        f"user omnirouter on >{ACL_PASSWORD} ~omni:* ~{{omni:* &* +@all\n"
    )
    with (where / "redis.log").open("wb") as log:
        # The test's redis-server must not outlive it.
        server = start_tied(["redis-server", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: server.poll() is not None or _answers(port), what="redis-server")
        assert server.poll() is None, (where / "redis.log").read_text()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _acl(url: str, *, password: str = ACL_PASSWORD) -> RedisSettings:
    return RedisSettings(url=url, username="omnirouter", password=password)  # type: ignore[arg-type]


async def test_the_acl_user_reads_and_writes_its_keys(acl_redis: str) -> None:
    settings = _acl(acl_redis)
    wait_for_redis(acl_redis, timeout_s=5, security=settings)
    client = aioredis.Redis.from_url(acl_redis, **redis_client_options(settings))
    try:
        # Both shapes of omnirouter's keys: plain prefix, and prefix inside a hash tag.
        for key in ("omni:acl-test", "{omni:acl}:test"):
            await client.set(key, "ok")
            assert await client.get(key) == b"ok"
    finally:
        await client.aclose()


@pytest.mark.parametrize("credentials", ["wrong-password", "none"])
def test_refused_credentials_fail_at_once_with_a_clear_reason(
    acl_redis: str, credentials: str
) -> None:
    if credentials == "none":
        settings = RedisSettings(url=acl_redis)
    else:
        settings = _acl(acl_redis, password=WRONG_PASSWORD)
    with pytest.raises(ServiceUnreachableError) as caught:
        # A long timeout on purpose: a refusal must not be retried until it runs out (the
        # per-test timeout would fail the test first).
        wait_for_redis(acl_redis, timeout_s=600, security=settings)
    message = str(caught.value)
    assert "refused omnirouter" in message
    assert "OMNIROUTER_REDIS__PASSWORD" in message
    assert ACL_PASSWORD not in message


def test_omnirouter_check_authenticates_as_the_acl_user_and_prints_no_secret(
    acl_redis: str, stack: StackAddresses
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env |= {
        "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "OMNIROUTER_REDIS__URL": acl_redis,
        "OMNIROUTER_REDIS__USERNAME": "omnirouter",
        "OMNIROUTER_REDIS__PASSWORD": ACL_PASSWORD,
    }
    result = subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"redis  {acl_redis}  ok" in result.stdout
    assert ACL_PASSWORD not in result.stdout + result.stderr


def test_cluster_replication_settings_still_create_writable_topics_on_one_broker(
    stack: StackAddresses, unique_id: str
) -> None:
    """replication 3 / min.insync 2 are lowered to what a one-node cluster can hold."""
    kafka = KafkaSettings(
        topic_prefix=f"test.{unique_id}.", replication_factor=3, min_insync_replicas=2
    )
    wanted = [t._replace(partitions=1) for t in catalogue_topics(Settings(kafka=kafka))][:1]
    assert wanted[0].configs["min.insync.replicas"] == "2"
    ensure_topics(stack.kafka_bootstrap_servers, wanted, security=kafka)
    topic = wanted[0].name
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": None})]
        )
    finally:
        admin.close()
    config = described["topic"][topic]["min.insync.replicas"]
    assert config["value"] == "1"
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="rf-test", security=kafka)
    try:
        metadata = producer.send(topic, b"acks=all").get(timeout=30)
    finally:
        producer.close()
    assert metadata.topic == topic and metadata.offset == 0
