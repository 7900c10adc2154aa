"""A kafka-python admin client that cannot start leaves no IO thread behind.

kafka-python 3.0 starts an admin client's IO thread before it bootstraps and leaves it running
when the bootstrap fails; ``wait_for_kafka`` and the lag monitor retry throughout an outage, so
each failed attempt used to add a thread that kept reconnecting.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaError

from omnirouter.connections import admin_client, wait_for_kafka
from omnirouter.errors import ServiceUnreachableError


def _io_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("kafka-io-") and t.is_alive()}


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a broker that is not one."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_an_admin_client_that_cannot_bootstrap_stops_its_io_thread(unused_port: int) -> None:
    before = _io_threads()
    for _ in range(3):
        with pytest.raises(KafkaError):
            admin_client(
                bootstrap_servers=[f"127.0.0.1:{unused_port}"],
                client_id="omnirouter-test-admin",
                request_timeout_ms=300,
                bootstrap_timeout_ms=300,
            )
    assert _io_threads() - before == set()


def test_wait_for_kafka_leaves_no_thread_when_the_port_is_not_a_broker(
    silent_listener: int,
) -> None:
    before = _io_threads()
    with pytest.raises(ServiceUnreachableError, match="did not answer as a broker"):
        wait_for_kafka(f"127.0.0.1:{silent_listener}", timeout_s=1.5)
    assert _io_threads() - before == set()
