"""A redis-server that devstack starts is its own, even when another server took its port.

``free_port`` releases the port it found before the server binds it, so two test processes
(``make test`` runs two) can pick the same one. The loser's server cannot bind and exits, but
while it is starting, the winner answers PING on that port: devstack used to take that for its
own server, and the tests of one process then wrote into the other's Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnirouter.devstack import redis as devstack_redis
from omnirouter.devstack.network import free_port
from omnirouter.devstack.redis import RedisProcess, restart_redis, serves_as, start_redis
from omnirouter.errors import StackError

pytestmark = pytest.mark.integration

BASE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "redis.conf"


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[RedisProcess]:
    """Another process's redis-server, on a port it holds."""
    server = start_redis(BASE_CONFIG, tmp_path / "holder", timeout_s=30.0, tie_to_parent=True)
    try:
        yield server
    finally:
        server.stop()


def test_a_new_server_whose_port_is_taken_moves_to_another_port(
    holder: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered = iter([holder.port])  # the race: the first port found is the other server's

    def taken_then_free() -> int:
        return next(offered, None) or free_port()

    monkeypatch.setattr(devstack_redis, "free_port", taken_then_free)
    ours = start_redis(BASE_CONFIG, tmp_path / "ours", timeout_s=30.0, tie_to_parent=True)
    try:
        assert ours.port != holder.port
        assert ours.pid != holder.pid
        assert serves_as(ours.port, ours.pid)
        assert serves_as(holder.port, holder.pid), "the other server is left as it was"
    finally:
        ours.stop()


def test_a_restart_on_a_port_another_server_took_meanwhile_fails_clearly(
    holder: RedisProcess, tmp_path: Path
) -> None:
    stopped = start_redis(BASE_CONFIG, tmp_path / "stopped", timeout_s=30.0, tie_to_parent=True)
    stopped.stop()
    # Its config names its own port: point it at the holder's, as if taken while it was down.
    config = tmp_path / "stopped" / "redis.conf"
    own_port = f"port {stopped.port}\n"
    assert own_port in config.read_text()
    config.write_text(config.read_text().replace(own_port, f"port {holder.port}\n"))

    adopted: list[RedisProcess] = []
    try:
        with pytest.raises(StackError, match="Address already in use"):
            adopted.append(
                restart_redis(tmp_path / "stopped", holder.port, timeout_s=30.0, tie_to_parent=True)
            )
    finally:
        # Had it taken the holder's server for its own, returning before its server failed to
        # bind, that server could still bind the port once the holder stops, and outlive us.
        for server in adopted:
            server.stop()
    assert serves_as(holder.port, holder.pid)


def test_serves_as_names_the_answering_process_only(holder: RedisProcess) -> None:
    assert serves_as(holder.port, holder.pid)
    assert not serves_as(holder.port, holder.pid + 1)
    assert not serves_as(free_port(), holder.pid), "nothing listens there"


def test_a_failed_start_is_explained_by_its_own_output_not_an_earlier_one(tmp_path: Path) -> None:
    node = tmp_path / "node"
    server = start_redis(BASE_CONFIG, node, timeout_s=30.0, tie_to_parent=True)
    server.stop()
    # The log is appended to: an earlier start in this folder met a taken port.
    with (node / "redis.log").open("a") as log:
        log.write(
            "# Warning: Could not create server TCP listening socket: Address already in use\n"
        )
    config = node / "redis.conf"
    config.write_text(config.read_text() + "no-such-directive yes\n")  # this start fails anyway

    with pytest.raises(StackError) as failed:
        restart_redis(node, server.port, timeout_s=30.0, tie_to_parent=True)
    assert "is taken" not in str(failed.value)
    assert "Bad directive" in str(failed.value), "the reason is this start's own"
