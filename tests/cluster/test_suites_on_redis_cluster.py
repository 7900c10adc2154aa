"""The identity, cases and routing suites pass on a Redis Cluster as they do on one redis-server.

They run in a pytest of their own with OMNIROUTER_TEST_REDIS_CLUSTER=1: that session starts a
6-node Redis Cluster (three masters, a replica each) next to its Kafka broker, and every client
the suites and their workers make is a cluster client. A script or MULTI whose keys span two
slots fails there with CROSSSLOT, a key built inside Lua on another slot with "non local key".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/integration/identity", "tests/integration/cases", "tests/integration/routing"]


@pytest.mark.timeout(1500)
def test_identity_cases_and_routing_suites_pass_on_a_redis_cluster() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_TEST_")}
    env |= {"OMNIROUTER_TEST_REDIS_CLUSTER": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider", "-rfE"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(f"identity, cases and routing suites on a Redis Cluster: {summary}")
    assert run.returncode == 0, "\n".join([*lines[-60:], run.stderr[-3000:]])
