"""`omnirouter devstack up|down|status`: a local Kafka + Redis under one state directory.

The state directory holds each server's data, config, log and a ``state.json`` naming their
pids and ports, so a later ``down`` or ``status`` (another process) finds them again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from omnirouter.devstack.kafka import (
    BROKER_MAIN,
    KafkaProcess,
    fetch_broker,
    restart_kafka,
    start_kafka,
)
from omnirouter.devstack.kafka_cluster import KafkaCluster
from omnirouter.devstack.network import accepts_connections
from omnirouter.devstack.paths import deploy_dir
from omnirouter.devstack.processes import is_running
from omnirouter.devstack.redis import RedisProcess, answers_ping, restart_redis, start_redis
from omnirouter.devstack.redis_cluster import RedisClusterStack
from omnirouter.errors import StackError
from omnirouter.settings import DevstackSettings

_STATE_FILE = "state.json"
_CLUSTER_MODE = "cluster"


@dataclass(frozen=True)
class StackAddresses:
    """Where a running stack listens."""

    kafka_bootstrap_servers: str
    redis_url: str


@dataclass(frozen=True)
class StackStatus:
    """What ``devstack status`` reports for each server."""

    kafka: str
    redis: str
    addresses: StackAddresses | None
    pids: tuple[int, ...]
    cluster: bool = False

    @property
    def running(self) -> bool:
        """True when both servers are up and answering."""
        return self.kafka == "running" and self.redis == "running"


class DevStack:
    """A local Kafka broker and redis-server, started and stopped as one."""

    def __init__(
        self, settings: DevstackSettings, *, tie_to_parent: bool = False, cluster: bool = False
    ) -> None:
        """Prepare a stack under ``settings.state_dir``; nothing starts until :meth:`up`.

        Args:
            settings: where state, cache and deploy files are.
            tie_to_parent: stop the servers when this process dies (for test sessions), instead
                of leaving them running for a later ``devstack down``.
            cluster: start a 3-node Kafka cluster and a 6-node Redis Cluster instead of one
                broker and one redis-server (``devstack up --cluster``).
        """
        self._settings = settings
        self._tie_to_parent = tie_to_parent
        self._cluster = cluster
        self.state_dir = settings.state_dir.resolve()

    @property
    def _state_path(self) -> Path:
        return self.state_dir / _STATE_FILE

    def fetch(self) -> Path:
        """Fetch the broker jars into the cache (once) and return their folder."""
        pom = deploy_dir(self._settings) / "kafka" / "pom.xml"
        return fetch_broker(pom, self._settings.cache_dir.expanduser().resolve())

    def up(self) -> StackAddresses:
        """Start both servers (or find them already running) and return their addresses."""
        current = self.status()
        if current.running and current.cluster == self._cluster and current.addresses is not None:
            return current.addresses
        self.down()  # whatever half of an earlier stack survived
        libs = self.fetch()
        if self._cluster:
            return self._up_cluster(libs)
        base_redis_conf = deploy_dir(self._settings) / "redis" / "redis.conf"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        redis = start_redis(
            base_redis_conf,
            self.state_dir / "redis",
            timeout_s=self._settings.start_timeout_s,
            tie_to_parent=self._tie_to_parent,
        )
        self._write_state(redis=redis, kafka=None)
        try:
            kafka = start_kafka(
                libs,
                self.state_dir / "kafka",
                heap=self._settings.kafka_heap,
                timeout_s=self._settings.start_timeout_s,
                tie_to_parent=self._tie_to_parent,
            )
        except BaseException:
            redis.stop()
            self._state_path.unlink(missing_ok=True)
            raise
        self._write_state(redis=redis, kafka=kafka)
        return StackAddresses(kafka.bootstrap_servers, redis.url)

    def stop_kafka(self) -> None:
        """Stop only the broker, keeping its log (fault tests: the broker goes away)."""
        kafka, _ = self._read_state()
        if kafka is not None:
            kafka.stop()

    def restart_kafka(self) -> None:
        """Start the broker again on its log and ports, as a restarted broker would come back."""
        kafka, redis = self._read_state()
        if kafka is None or redis is None:
            raise StackError("devstack is not up")
        if kafka.is_running():
            return
        restarted = restart_kafka(
            self.fetch(),
            self.state_dir / "kafka",
            kafka.port,
            kafka.controller_port,
            heap=self._settings.kafka_heap,
            timeout_s=self._settings.start_timeout_s,
            tie_to_parent=self._tie_to_parent,
        )
        self._write_state(redis=redis, kafka=restarted)

    @contextlib.contextmanager
    def kafka_hung(self) -> Iterator[None]:
        """The broker keeps its connections but answers nothing (SIGSTOP), as on a frozen
        machine or across a network partition; it carries on afterwards (fault tests)."""
        kafka, _ = self._read_state()
        if kafka is None or not kafka.is_running():
            raise StackError("the devstack's broker is not running")
        os.kill(kafka.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(kafka.pid, signal.SIGCONT)

    def stop_redis(self) -> None:
        """Stop only redis-server (SIGTERM: it flushes its AOF), keeping its data directory."""
        _, redis = self._read_state()
        if redis is not None:
            redis.stop()

    def restart_redis(self) -> None:
        """Start redis-server again on its port and AOF, as a restarted server would come back.

        Returns once it answers PING, which it does only after reloading the AOF.
        """
        kafka, redis = self._read_state()
        if redis is None:
            raise StackError("devstack is not up")
        if redis.is_running():
            return
        restarted = restart_redis(
            self.state_dir / "redis",
            redis.port,
            timeout_s=self._settings.start_timeout_s,
            tie_to_parent=self._tie_to_parent,
        )
        self._write_state(redis=restarted, kafka=kafka)

    def down(self, *, keep_data: bool = False) -> None:
        """Stop both servers (or both clusters) and wait until their processes are gone."""
        if self._cluster_state() is not None:
            self._down_cluster(keep_data=keep_data)
            return
        kafka, redis = self._read_state()
        if kafka is not None:
            kafka.stop()
        if redis is not None:
            redis.stop()
        leftovers = [p for p in (kafka, redis) if p is not None and p.is_running()]
        if leftovers:
            raise StackError(f"could not stop pid {leftovers[0].pid}; stop it by hand")
        self._state_path.unlink(missing_ok=True)
        if not keep_data:
            for sub in ("kafka", "redis"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)

    def status(self) -> StackStatus:
        """Each server's state: running, not answering, stopped or not started."""
        if self._cluster_state() is not None:
            return self._cluster_status()
        kafka, redis = self._read_state()
        kafka_state = _describe(
            kafka is not None and kafka.is_running(),
            kafka is not None and accepts_connections("127.0.0.1", kafka.port),
            kafka is None,
        )
        redis_state = _describe(
            redis is not None and redis.is_running(),
            redis is not None and answers_ping(redis.port),
            redis is None,
        )
        addresses = (
            StackAddresses(kafka.bootstrap_servers, redis.url)
            if kafka is not None and redis is not None
            else None
        )
        pids = tuple(p.pid for p in (kafka, redis) if p is not None and p.is_running())
        return StackStatus(kafka_state, redis_state, addresses, pids)

    # -- cluster mode: the state file names the two clusters' own state directories ----------

    def kafka_cluster(self) -> KafkaCluster:
        """The Kafka cluster of a ``cluster`` stack, to kill and restart its nodes (scale tests)."""
        return self._kafka_cluster(self.fetch())

    def _kafka_cluster(self, libs: Path | None = None) -> KafkaCluster:
        return KafkaCluster(
            self.state_dir / "kafka-cluster",
            libs=libs,  # each node on the cluster's default heap: three must fit a small machine
            timeout_s=self._settings.start_timeout_s,
            tie_to_parent=self._tie_to_parent,
        )

    def _redis_cluster(self) -> RedisClusterStack:
        return RedisClusterStack(
            self.state_dir / "redis-cluster",
            base_config=deploy_dir(self._settings) / "redis" / "redis.conf",
            timeout_s=self._settings.start_timeout_s,
            tie_to_parent=self._tie_to_parent,
        )

    def _up_cluster(self, libs: Path) -> StackAddresses:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_json({"mode": _CLUSTER_MODE})  # so that `down` finds a half-started one
        try:
            redis_url = self._redis_cluster().up()
            bootstrap = self._kafka_cluster(libs).up()
        except BaseException:
            self._down_cluster(keep_data=False)
            raise
        self._write_json({"mode": _CLUSTER_MODE, "kafka": bootstrap, "redis": redis_url})
        return StackAddresses(bootstrap, redis_url)

    def _down_cluster(self, *, keep_data: bool) -> None:
        self._kafka_cluster().down(keep_data=keep_data)
        self._redis_cluster().down()
        self._state_path.unlink(missing_ok=True)

    def _cluster_status(self) -> StackStatus:
        state = self._cluster_state() or {}
        kafka = self._kafka_cluster().status()
        redis_urls = self._redis_cluster().urls()
        answering = [answers_ping(urlsplit(url).port or 6379) for url in redis_urls]
        redis_state = _describe(all(answering), all(answering), not redis_urls)
        addresses = None
        if "kafka" in state and "redis" in state:
            addresses = StackAddresses(str(state["kafka"]), str(state["redis"]))
        return StackStatus(kafka.describe(), redis_state, addresses, kafka.pids, cluster=True)

    def _cluster_state(self) -> dict[str, object] | None:
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return None  # no stack, or a single-node state that _read_state reports on
        return state if state.get("mode") == _CLUSTER_MODE else None

    def _write_json(self, state: dict[str, object]) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self._state_path)

    def _write_state(self, *, redis: RedisProcess, kafka: KafkaProcess | None) -> None:
        state: dict[str, object] = {
            "redis": {"pid": redis.pid, "port": redis.port, "log": str(redis.log_path)},
        }
        if kafka is not None:
            state["kafka"] = {
                "pid": kafka.pid,
                "port": kafka.port,
                "controller_port": kafka.controller_port,
                "log": str(kafka.log_path),
            }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self._state_path)

    def _read_state(self) -> tuple[KafkaProcess | None, RedisProcess | None]:
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as exc:
            raise StackError(f"unreadable devstack state {self._state_path}: {exc}") from None
        kafka = redis = None
        if "kafka" in state:
            k = state["kafka"]
            kafka = KafkaProcess(k["pid"], k["port"], k["controller_port"], Path(k["log"]))
        if "redis" in state:
            r = state["redis"]
            redis = RedisProcess(r["pid"], r["port"], Path(r["log"]))
        return kafka, redis


def _describe(alive: bool, answering: bool, never_started: bool) -> str:
    if never_started:
        return "not started"
    if alive and answering:
        return "running"
    if alive:
        return "not answering"
    return "stopped"


def stray_broker_pids(state_dir: Path) -> list[int]:
    """Pids of Kafka JVMs whose command line names ``state_dir`` (for leak checks)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and is_running(int(proc.name), expect=BROKER_MAIN):
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if str(state_dir) in cmdline:
                found.append(int(proc.name))
    return found
