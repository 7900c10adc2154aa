"""A real Redis Cluster on loopback: masters with one replica each, for tests and `devstack up`.

Every node is the same redis-server as the single-node devstack, configured from
deploy/redis/redis.conf (AOF on) plus the cluster settings. The cluster is created with
``redis-cli --cluster create``, as an operator would, and is only handed out once every node
reports ``cluster_state:ok`` and every replica has synced, so a failover can be tested at once.
The state file names each node's pid and ports, so another process can stop the cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from omnirouter.devstack.network import free_port
from omnirouter.devstack.paths import deploy_dir
from omnirouter.devstack.processes import is_running, spawn, stop_process, wait_until
from omnirouter.devstack.redis import wait_until_serving
from omnirouter.devstack.requirements import require_tool
from omnirouter.errors import StackError
from omnirouter.settings import DevstackSettings

_PROCESS_NAME = "redis-server"
_STATE_FILE = "redis-cluster.json"
# Small, so that a killed master is replaced in seconds: the failover tests wait for it.
_NODE_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class ClusterNode:
    """One redis-server of the cluster: its pid, client port, bus port and data directory."""

    pid: int
    port: int
    bus_port: int
    data_dir: Path

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return is_running(self.pid, expect=_PROCESS_NAME)


@dataclass(frozen=True)
class _Role:
    node_id: str
    port: int
    master_id: str | None  # None for a master
    failed: bool
    slots: frozenset[int]


class RedisClusterStack:
    """A Redis Cluster of ``nodes`` redis-servers on free loopback ports under ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        nodes: int = 6,
        replicas_per_master: int = 1,
        tie_to_parent: bool = False,
        base_config: Path | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        """Prepare the cluster; nothing starts until :meth:`up`.

        Args:
            state_dir: where each node's data, config and log go, and the state file.
            nodes: redis-servers in all (masters and replicas).
            replicas_per_master: replicas of each master; ``nodes`` must divide evenly.
            tie_to_parent: stop the servers when this process dies (test sessions).
            base_config: the redis.conf every node includes (default: deploy/redis/redis.conf).
            timeout_s: how long starting, creating or failing over may take.
        """
        masters, rest = divmod(nodes, replicas_per_master + 1)
        if rest or masters < 3:
            raise StackError(
                f"{nodes} nodes with {replicas_per_master} replica(s) each do not make a cluster "
                "of at least 3 masters"
            )
        self.state_dir = state_dir.resolve()
        self._count = nodes
        self._replicas = replicas_per_master
        self._tie_to_parent = tie_to_parent
        self._base_config = base_config
        self._timeout_s = timeout_s

    @property
    def _state_path(self) -> Path:
        return self.state_dir / _STATE_FILE

    def up(self) -> str:
        """Start and create the cluster (or find it running); returns one node's redis:// URL."""
        running = self._read_state()
        if running and all(n.is_running() for n in running) and self._cluster_ok(running):
            return _url(running[0].port)
        self.down()
        base = self._base_config or deploy_dir(DevstackSettings()) / "redis" / "redis.conf"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started: list[ClusterNode] = []
        try:
            for index in range(self._count):
                started.append(self._start_node(base, self.state_dir / f"redis-node-{index}"))
                self._write_state(started)
            self._create(started)
        except BaseException:
            self.down()
            raise
        return _url(started[0].port)

    def down(self) -> None:
        """Stop every node and remove their data; returns once no process is left."""
        nodes = self._read_state()
        for node in nodes:
            stop_process(node.pid, expect=_PROCESS_NAME, grace_s=15.0)
        leftovers = [n.pid for n in nodes if n.is_running()]
        if leftovers:
            raise StackError(f"could not stop redis-server pid {leftovers[0]}; stop it by hand")
        for node in nodes:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        self._state_path.unlink(missing_ok=True)

    def urls(self) -> list[str]:
        """A redis:// URL of every running node (any is a startup node for a cluster client)."""
        return [_url(n.port) for n in self._live_nodes()]

    def masters(self) -> list[int]:
        """Ports of the masters serving slots now, as the running nodes see it."""
        roles = self._roles()
        return sorted(r.port for r in roles if r.master_id is None and r.slots and not r.failed)

    def replicas_of(self, master_port: int) -> list[int]:
        """Ports of the live replicas of the master on ``master_port``."""
        roles = self._roles()
        master = next((r for r in roles if r.port == master_port), None)
        if master is None:
            return []
        return sorted(r.port for r in roles if r.master_id == master.node_id and not r.failed)

    def master_of_slot(self, slot: int) -> int:
        """Port of the master serving hash slot ``slot``."""
        for role in self._roles():
            if role.master_id is None and not role.failed and slot in role.slots:
                return role.port
        raise StackError(f"no master serves slot {slot}")

    def fail_over(self, port: int) -> int:
        """Gracefully hand the master on ``port`` over to its replica; returns the new master.

        ``CLUSTER FAILOVER`` on the replica: the master stops taking writes, the replica
        catches up with it and takes its slots, so no acknowledged write is lost.
        """
        replica = self._a_replica_of(port)
        client = redis.Redis(port=replica, socket_timeout=5.0)
        try:
            _cluster_command(client, "FAILOVER")
        finally:
            client.close()
        self._wait(lambda: replica in self.masters() and port not in self.masters(), "failover")
        # The old master follows its replica now; wait until it synced, so it can take over
        # again in turn.
        self._wait(
            lambda: self._cluster_ok(self._live_nodes(), full=True), "the old master to sync"
        )
        return replica

    def kill(self, port: int) -> int:
        """SIGKILL the master on ``port`` and wait until its replica took over; returns it.

        The automatic failover takes about twice ``cluster-node-timeout`` (2 s here).
        """
        replica = self._a_replica_of(port)
        node = self._node(port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGKILL)
        self._wait(lambda: not node.is_running(), f"redis-server pid {node.pid} to die")
        self._wait(lambda: replica in self.masters(), f"replica {replica} to take over")
        self._wait(lambda: self._cluster_ok(self._live_nodes()), "cluster_state:ok")
        return replica

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and data: it rejoins as a replica."""
        node = self._node(port)
        if node.is_running():
            return
        restarted = self._launch(node.data_dir, node.port, node.bus_port)
        if restarted is None:
            raise StackError(f"redis-server on port {port} did not restart")
        self._write_state([restarted if n.port == port else n for n in self._read_state()])
        self._wait(lambda: self._cluster_ok(self._live_nodes(), full=True), "the node to rejoin")

    def _start_node(self, base: Path, data_dir: Path, attempts: int = 3) -> ClusterNode:
        data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            port, bus_port = free_port(), free_port()
            if port == bus_port:  # each found free on its own: they can be the same one
                continue
            (data_dir / "redis.conf").write_text(
                f"include {base}\n"
                f"port {port}\nbind 127.0.0.1\ndir {data_dir}\n"
                f'daemonize no\nlogfile ""\npidfile {data_dir / "redis.pid"}\n'
                "cluster-enabled yes\ncluster-config-file nodes.conf\n"
                f"cluster-port {bus_port}\ncluster-node-timeout {_NODE_TIMEOUT_MS}\n"
                # A replica may take over however long it was cut off: in tests the replica is
                # always as fresh as the master it replaces.
                "cluster-replica-validity-factor 0\n"
                # Replicas sync at once instead of waiting 5 s for more replicas to join.
                "repl-diskless-sync-delay 0\n"
            )
            node = self._launch(data_dir, port, bus_port)
            if node is not None:
                return node
        log = (data_dir / "redis.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise StackError(f"redis-server (cluster node) did not start: {' '.join(log)[:300]}")

    def _launch(self, data_dir: Path, port: int, bus_port: int) -> ClusterNode | None:
        process = spawn(
            [require_tool("redis-server"), str(data_dir / "redis.conf")],
            log_path=data_dir / "redis.log",
            cwd=data_dir,
            tie_to_parent=self._tie_to_parent,
        )
        node = ClusterNode(process.pid, port, bus_port, data_dir)
        if wait_until_serving(process, port, self._timeout_s):
            return node
        stop_process(node.pid, expect=_PROCESS_NAME, grace_s=5.0)
        return None

    def _create(self, nodes: list[ClusterNode]) -> None:
        command = [
            require_tool("redis-cli"),
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in nodes),
            "--cluster-replicas",
            str(self._replicas),
            "--cluster-yes",
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise StackError("redis-cli --cluster create did not finish") from None
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise StackError(f"redis-cli --cluster create failed: {' '.join(tail)[:400]}")
        self._wait(lambda: self._cluster_ok(nodes, full=True), "cluster_state:ok on every node")

    def _cluster_ok(self, nodes: list[ClusterNode], *, full: bool = False) -> bool:
        """Every node in ``nodes`` is settled: cluster_state:ok, all slots served by the
        expected number of live masters in its own view, and, on a replica, a synced link.

        ``full`` also asks every master to have all its replicas (after creation or a restart);
        without it a cluster that lost a node to a failover still counts as ok.
        """
        masters = self._count // (self._replicas + 1)
        for node in nodes:
            client = redis.Redis(port=node.port, socket_timeout=2.0, socket_connect_timeout=2.0)
            try:
                info = _parse_info(_cluster_command(client, "INFO"))
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                view = _parse_nodes(_cluster_command(client, "NODES"))
                serving = [r for r in view if r.master_id is None and r.slots and not r.failed]
                if len(serving) != masters:
                    return False
                if full and any(
                    sum(1 for r in view if r.master_id == m.node_id and not r.failed)
                    < self._replicas
                    for m in serving
                ):
                    return False
                replication = client.info("replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                    or replication.get("master_sync_in_progress")
                ):
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def _roles(self) -> list[_Role]:
        client = self._admin_client()
        try:
            return _parse_nodes(_cluster_command(client, "NODES"))
        finally:
            client.close()

    def _admin_client(self) -> redis.Redis:
        live = self._live_nodes()
        if not live:
            raise StackError("the Redis Cluster is not running")
        return redis.Redis(port=live[0].port, socket_timeout=5.0)

    def _live_nodes(self) -> list[ClusterNode]:
        return [n for n in self._read_state() if n.is_running()]

    def _node(self, port: int) -> ClusterNode:
        for node in self._read_state():
            if node.port == port:
                return node
        raise StackError(f"no cluster node on port {port}")

    def _a_replica_of(self, port: int) -> int:
        if port not in self.masters():
            raise StackError(f"port {port} is not a master of the cluster")
        replicas = self.replicas_of(port)
        if not replicas:
            raise StackError(f"master {port} has no live replica to take over")
        return replicas[0]

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        def holds() -> bool:
            try:
                return condition()
            except (redis.RedisError, StackError):
                return False  # a node between roles: ask again

        if not wait_until(holds, timeout_s=self._timeout_s, interval_s=0.1):
            raise StackError(f"Redis Cluster: timed out waiting for {what}")

    def _write_state(self, nodes: list[ClusterNode]) -> None:
        state = {
            "nodes": [
                {"pid": n.pid, "port": n.port, "bus_port": n.bus_port, "dir": str(n.data_dir)}
                for n in nodes
            ]
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self._state_path)

    def _read_state(self) -> list[ClusterNode]:
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StackError(f"unreadable Redis Cluster state {self._state_path}: {exc}") from None
        return [
            ClusterNode(n["pid"], n["port"], n["bus_port"], Path(n["dir"])) for n in state["nodes"]
        ]


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _cluster_command(client: redis.Redis, subcommand: str) -> Any:
    # Sent as two words so that redis-py's parsers leave the reply as Redis wrote it.
    return client.execute_command("CLUSTER", subcommand)  # type: ignore[no-untyped-call]  # untyped in redis-py


def _parse_nodes(raw: bytes | str) -> list[_Role]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    roles = []
    for line in text.strip().splitlines():
        node_id, address, flags, master, _ping, _pong, _epoch, _link, *ranges = line.split()
        flag_set = set(flags.split(","))
        port = int(address.split("@")[0].rpartition(":")[2])
        failed = bool(flag_set & {"fail", "fail?", "noaddr", "handshake"})
        is_master = "master" in flag_set
        slots = frozenset(_slots(ranges))
        roles.append(_Role(node_id, port, None if is_master else master, failed, slots))
    return roles


def _slots(ranges: list[str]) -> list[int]:
    # "0-5460" or "42"; "[slot->-node]" entries are migrations in flight, not served yet.
    slots: list[int] = []
    for item in ranges:
        if item.startswith("["):
            continue
        first, _, last = item.partition("-")
        slots.extend(range(int(first), int(last or first) + 1))
    return slots


def _parse_info(raw: bytes | str) -> dict[str, str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}
