"""`omnirouter devstack up|status|down` and `omnirouter run` leave no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from omnirouter.connections import wait_for_kafka, wait_for_redis
from omnirouter.devstack.processes import command_line
from omnirouter.devstack.stack import stray_broker_pids
from omnirouter.events.topics import TOPICS, topic_name
from support.waiting import eventually

pytestmark = pytest.mark.integration

OMNIROUTER = [sys.executable, "-m", "omnirouter.cli"]


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env["OMNIROUTER_DEVSTACK__STATE_DIR"] = str(state_dir)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNIROUTER, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _alive(pid: int) -> bool:
    return command_line(pid) != ""


def test_devstack_up_then_down_leaves_no_java_or_redis_process(tmp_path: Path) -> None:
    env = _env(tmp_path / "state")
    up = _cli(["devstack", "up", "--json"], env)
    assert up.returncode == 0, up.stderr
    addresses = json.loads(up.stdout)
    try:
        # Both answer as real servers, not merely as open ports.
        wait_for_kafka(addresses["kafka"], timeout_s=10)
        wait_for_redis(addresses["redis"], timeout_s=10)
        status = _cli(["devstack", "status", "--json"], env)
        assert status.returncode == 0
        report = json.loads(status.stdout)
        assert report["kafka"] == report["redis"] == "running"
        pids = report["pids"]
        assert len(pids) == 2
        assert any("kafka.Kafka" in command_line(pid) for pid in pids)
        assert any("redis-server" in command_line(pid) for pid in pids)
        # A second `up` finds the running stack instead of starting another.
        again = _cli(["devstack", "up", "--json"], env)
        assert json.loads(again.stdout) == addresses
    finally:
        down = _cli(["devstack", "down"], env)
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if _alive(pid)]
    assert stray_broker_pids(tmp_path / "state") == []
    after = _cli(["devstack", "status", "--json"], env)
    assert after.returncode == 1
    assert json.loads(after.stdout)["kafka"] == "not started"


def test_run_prints_addresses_creates_topics_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = _env(state_dir)
    env["OMNIROUTER_API__PORT"] = "0"  # a free port, printed in the banner
    env["OMNIROUTER_OPS__WORKER_METRICS_PORT"] = "0"
    env["OMNIROUTER_INGRESS__SMTP_PORT"] = "0"
    # The demo has a test of its own (tests/e2e/test_make_run_demo.py): here, the router alone.
    env["OMNIROUTER_DEMO__ENABLED"] = "false"
    process = subprocess.Popen(
        [*OMNIROUTER, "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        eventually(
            lambda: any("Press Ctrl-C" in line for line in lines) or process.poll() is not None,
            timeout_s=180,
            what="omnirouter run to print its banner",
        )
        output = "".join(lines)
        assert "omnirouter is running" in output, output
        kafka = next(line.split()[1] for line in lines if line.strip().startswith("kafka"))
        redis_url = next(line.split()[1] for line in lines if line.strip().startswith("redis"))
        wait_for_redis(redis_url, timeout_s=10)
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=kafka)
        try:
            assert {topic_name(spec) for spec in TOPICS} <= set(admin.list_topics())
        finally:
            admin.close()
        pids = json.loads((state_dir / "state.json").read_text())
        worker_pid = int(
            next(line for line in lines if line.strip().startswith("workers "))
            .split("pid ")[1]
            .rstrip(")\n")
        )
        server_pids = [pids["kafka"]["pid"], pids["redis"]["pid"], worker_pid]
        api = next(line.split()[1] for line in lines if line.strip().startswith("api "))
        token = next(line.split()[2] for line in lines if "operator token" in line)
        assert httpx.get(f"{api}/healthz", timeout=10).json() == {"status": "ok"}
        reviews = f"{api}/api/identity/reviews"
        assert httpx.get(reviews, timeout=10).status_code == 401
        authorized = httpx.get(reviews, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert authorized.status_code == 200, authorized.text
        assert authorized.json() == []
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        reader.join(timeout=5)
        process.stdout.close()  # type: ignore[union-attr]
    assert code == 0, "".join(lines)
    assert "omnirouter stopped" in "".join(lines)
    assert not [pid for pid in server_pids if _alive(pid)]
    assert stray_broker_pids(state_dir) == []
