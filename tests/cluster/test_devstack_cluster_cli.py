"""`omnirouter devstack up --cluster` and `devstack status` on a running cluster stack: the
addresses of all three brokers, the settings that make the router use them as a cluster, and
each server's state. (Starting and stopping it is the package fixture's work.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from omnirouter.devstack import DevStack
from omnirouter.devstack.processes import command_line

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CLUSTER_SETTINGS = {
    "OMNIROUTER_KAFKA__REPLICATION_FACTOR": "3",
    "OMNIROUTER_KAFKA__MIN_INSYNC_REPLICAS": "2",
    "OMNIROUTER_REDIS__CLUSTER": "true",
}


def _cli(stack: DevStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env["OMNIROUTER_DEVSTACK__STATE_DIR"] = str(stack.state_dir)
    return subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", "devstack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_reports_three_running_brokers_and_the_redis_cluster(
    cluster_stack: DevStack,
) -> None:
    """`devstack status` finds the cluster from the state file: both running, three JVMs."""
    status = _cli(cluster_stack, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["kafka"], report["redis"], report["cluster"]) == ("running", "running", True)
    assert len(report["addresses"]["kafka"].split(",")) == 3
    assert len(report["pids"]) == 3
    assert all("kafka.Kafka" in command_line(pid) for pid in report["pids"])


def test_up_cluster_finds_the_running_cluster_and_prints_the_settings_to_use(
    cluster_stack: DevStack,
) -> None:
    """A second `up --cluster` starts nothing: it prints the same addresses and the settings
    for replicated topics and a Redis Cluster client."""
    before = cluster_stack.status()
    expected = before.addresses
    assert expected is not None
    up = _cli(cluster_stack, "up", "--cluster", "--json")
    assert up.returncode == 0, up.stderr
    found = json.loads(up.stdout)
    assert (found["kafka"], found["redis"]) == (
        expected.kafka_bootstrap_servers,
        expected.redis_url,
    )
    assert found["env"] == CLUSTER_SETTINGS
    text = _cli(cluster_stack, "up", "--cluster")
    assert text.returncode == 0, text.stderr
    for name, value in CLUSTER_SETTINGS.items():
        assert f"{name}={value}" in text.stdout
    assert cluster_stack.status().pids == before.pids, "a second `up` restarted the brokers"
