"""Closing a synchronous Redis Cluster client closes its sockets to every node.

redis-py's own ``RedisCluster.close()`` leaves them open when the client was made from a URL;
garbage collection then finds them and warns, which failed a test run at its very end.
"""

from __future__ import annotations

import psutil
import pytest

from omnirouter.devstack import DevStack
from omnirouter.security import redis_sync_client
from omnirouter.settings import RedisSettings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _sockets_to_cluster(ports: set[int]) -> int:
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port in ports and c.status == psutil.CONN_ESTABLISHED
    )


def test_closing_a_cluster_client_closes_its_connections_to_every_node(
    cluster_stack: DevStack,
) -> None:
    addresses = cluster_stack.status().addresses
    assert addresses is not None
    client = redis_sync_client(RedisSettings(cluster=True), addresses.redis_url)
    ports = {node.port for node in client.get_nodes()}  # type: ignore[attr-defined]
    assert len(ports) == 6
    before = _sockets_to_cluster(ports)
    with client.pipeline(transaction=False) as pipe:
        for n in range(30):  # keys on every master
            pipe.get(f"close-test:{n}")
        pipe.execute()
    client.ping()
    assert _sockets_to_cluster(ports) > before, "the client did not connect"

    client.close()

    assert _sockets_to_cluster(ports) == before
