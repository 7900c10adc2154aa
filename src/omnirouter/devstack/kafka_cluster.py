"""A KRaft Kafka cluster of three combined broker+controller nodes on loopback.

It runs the same broker jars as the one-node devstack (see kafka.py), with replication the way
production has it (3 replicas, min.insync.replicas 2), so the scale tests can kill a broker and
see writes go on. Each node lives in ``<state_dir>/node-<id>/`` laid out like the single broker
(server.properties, log4j2.properties, kafka.log, log/), and ``<state_dir>/cluster.json``
records pids and ports so that another process (``omnirouter devstack down``) finds them again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The single broker's own helpers: one node and three are formatted, run and awaited alike.
from omnirouter.devstack.kafka import (
    _LOG4J2,
    BROKER_MAIN,
    KafkaProcess,
    _check_java,
    _format_storage,
    _java_command,
    _read,
    _wait_ready,
    new_cluster_id,
    restart_kafka,
)
from omnirouter.devstack.network import accepts_connections, free_port
from omnirouter.devstack.processes import spawn, wait_until
from omnirouter.devstack.requirements import require_tool
from omnirouter.errors import StackError

CLUSTER_FILE = "cluster.json"
_PORT_TAKEN = ("Address already in use", "BindException")


def _server_properties(node_id: int, ports: list[tuple[int, int]], data_dir: Path) -> str:
    port, controller_port = ports[node_id - 1]
    voters = ",".join(f"{n}@127.0.0.1:{c}" for n, (_, c) in enumerate(ports, start=1))
    replicas = len(ports)
    min_isr = max(1, replicas - 1)
    # Static voters: every node knows the whole quorum from its config, so the three can be
    # formatted alike and started together (no --standalone node plus joins to sequence).
    # A broker that stops heartbeating is fenced after 4 s instead of 9 s: a killed node's
    # partitions get new leaders (and a shrunk ISR) quickly enough for a bounded test.
    return f"""\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir / "log"}
num.partitions=1
auto.create.topics.enable=false
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
unclean.leader.election.enable=false
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
delete.topic.enable=true
"""


@dataclass(frozen=True)
class KafkaClusterStatus:
    """Each node's state (running, not answering, stopped) and where clients connect."""

    nodes: tuple[str, ...]
    bootstrap_servers: str | None
    pids: tuple[int, ...]

    @property
    def running(self) -> bool:
        """True when every node is up and answering."""
        return bool(self.nodes) and all(n == "running" for n in self.nodes)

    def describe(self) -> str:
        """One word for ``devstack status``: running, degraded (n/3), stopped or not started."""
        if not self.nodes:
            return "not started"
        up = sum(n == "running" for n in self.nodes)
        if up == len(self.nodes):
            return "running"
        return f"degraded ({up}/{len(self.nodes)} running)" if up else "stopped"


class KafkaCluster:
    """Three (by default) KRaft nodes, each broker and controller, started and stopped as one."""

    def __init__(
        self,
        state_dir: Path,
        *,
        libs: Path | None = None,
        nodes: int = 3,
        heap: str = "512m",
        timeout_s: float = 90.0,
        tie_to_parent: bool = False,
    ) -> None:
        """Prepare a cluster under ``state_dir``; nothing starts until :meth:`up`.

        Args:
            state_dir: holds each node's data and ``cluster.json``.
            libs: the broker jars (``DevStack.fetch()``); only needed to start nodes.
            nodes: how many nodes (replication factor = nodes, min ISR = nodes - 1).
            heap: each JVM's heap; three nodes must fit a small machine.
            timeout_s: how long a node may take to start.
            tie_to_parent: stop the nodes when this process dies (test sessions).
        """
        self.state_dir = state_dir.resolve()
        self._libs = libs
        self._size = nodes
        self._heap = heap
        self._timeout_s = timeout_s
        self._tie_to_parent = tie_to_parent

    @property
    def _state_path(self) -> Path:
        return self.state_dir / CLUSTER_FILE

    def node_dir(self, index: int) -> Path:
        """Where node ``index`` (0-based; its node.id is index + 1) keeps config, log and data."""
        return self.state_dir / f"node-{index + 1}"

    def nodes(self) -> list[KafkaProcess]:
        """The nodes as last recorded (a killed node keeps its entry, with a dead pid)."""
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StackError(f"unreadable Kafka cluster state {self._state_path}: {exc}") from None
        return [
            KafkaProcess(n["pid"], n["port"], n["controller_port"], Path(n["log"]))
            for n in state["nodes"]
        ]

    @property
    def bootstrap_servers(self) -> str:
        """host:port of every node, comma-separated, as clients take them."""
        nodes = self.nodes()
        if not nodes:
            raise StackError("the Kafka cluster is not up")
        return ",".join(n.bootstrap_servers for n in nodes)

    def up(self) -> str:
        """Format and start every node (or find them running); returns the bootstrap servers.

        Raises:
            StackError: a node exited or the cluster did not become ready in time.
        """
        if self.status().running:
            return self.bootstrap_servers
        self.down()
        libs = self._require_libs()
        java = require_tool("java")
        _check_java(java)
        last_error = "not started"
        for _ in range(3):
            ports = self._free_ports()
            started = self._start_all(java, libs, ports)
            problem = self._wait_all_ready(started)
            if problem is None:
                return self.bootstrap_servers
            # Read before down() removes the logs: only a port taken meanwhile is worth a retry.
            port_taken = any(m in _read(n.log_path) for n, _ in started for m in _PORT_TAKEN)
            self.down()
            last_error = problem
            if not port_taken:
                break
        raise StackError(f"Kafka cluster did not start: {last_error}")

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based), as a crashed machine would vanish, and wait for it."""
        node = self._node(index)
        if node.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        if not wait_until(lambda: not node.is_running(), timeout_s=10.0):
            raise StackError(f"Kafka node {index + 1} (pid {node.pid}) did not die")

    def restart(self, index: int) -> None:
        """Start node ``index`` again on its log and ports; returns once it serves again."""
        node = self._node(index)
        if node.is_running():
            return
        restarted = restart_kafka(
            self._require_libs(),
            self.node_dir(index),
            node.port,
            node.controller_port,
            heap=self._heap,
            timeout_s=self._timeout_s,
            tie_to_parent=self._tie_to_parent,
        )
        nodes = self.nodes()
        nodes[index] = restarted
        self._write_state(nodes)

    def down(self, *, keep_data: bool = False) -> None:
        """Stop every node and wait until the JVMs are gone.

        All nodes get SIGTERM at once: stopped one by one, the last ones would wait for a
        controller quorum that the earlier ones took away.
        """
        nodes = [n for n in self.nodes() if n.is_running()]
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGTERM)
        gone = wait_until(lambda: not any(n.is_running() for n in nodes), timeout_s=30.0)
        if not gone:
            for node in nodes:
                if node.is_running():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(node.pid, signal.SIGKILL)
            wait_until(lambda: not any(n.is_running() for n in nodes), timeout_s=10.0)
        leftovers = [n.pid for n in nodes if n.is_running()]
        if leftovers:
            raise StackError(f"could not stop Kafka pid {leftovers[0]}; stop it by hand")
        self._state_path.unlink(missing_ok=True)
        if not keep_data:
            for index in range(self._size):
                _remove_tree(self.node_dir(index))

    def status(self) -> KafkaClusterStatus:
        """Each node's state, the bootstrap servers and the live pids."""
        nodes = self.nodes()
        states = tuple(_node_state(n) for n in nodes)
        bootstrap = ",".join(n.bootstrap_servers for n in nodes) if nodes else None
        pids = tuple(n.pid for n in nodes if n.is_running())
        return KafkaClusterStatus(states, bootstrap, pids)

    def _node(self, index: int) -> KafkaProcess:
        nodes = self.nodes()
        if not 0 <= index < len(nodes):
            raise StackError(f"no Kafka node {index} (the cluster has {len(nodes)})")
        return nodes[index]

    def _require_libs(self) -> Path:
        if self._libs is None:
            raise StackError("starting Kafka nodes needs the broker jars (libs=…)")
        return self._libs

    def _free_ports(self) -> list[tuple[int, int]]:
        ports: set[int] = set()
        while len(ports) < 2 * self._size:
            ports.add(free_port())
        flat = sorted(ports)
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(self._size)]

    def _start_all(
        self, java: str, libs: Path, ports: list[tuple[int, int]]
    ) -> list[tuple[KafkaProcess, subprocess.Popen[bytes]]]:
        # Formatted alike, then started together: a node finishes starting only once the
        # controller quorum (a majority of the voters) has formed.
        cluster_id = new_cluster_id()
        started = []
        for index in range(self._size):
            data_dir = self.node_dir(index)
            _remove_tree(data_dir / "log")
            data_dir.mkdir(parents=True, exist_ok=True)
            log4j = data_dir / "log4j2.properties"
            log4j.write_text(_LOG4J2)
            config = data_dir / "server.properties"
            config.write_text(_server_properties(index + 1, ports, data_dir))
            _format_storage(java, libs, log4j, config, cluster_id=cluster_id)
        for index in range(self._size):
            data_dir = self.node_dir(index)
            log_path = data_dir / "kafka.log"
            log_path.unlink(missing_ok=True)
            log4j = data_dir / "log4j2.properties"
            argv = _java_command(java, libs, log4j, BROKER_MAIN, self._heap)
            process = spawn(
                [*argv, str(data_dir / "server.properties")],
                log_path=log_path,
                cwd=data_dir,
                tie_to_parent=self._tie_to_parent,
            )
            port, controller_port = ports[index]
            started.append((KafkaProcess(process.pid, port, controller_port, log_path), process))
        self._write_state([node for node, _ in started])
        return started

    def _wait_all_ready(
        self, started: list[tuple[KafkaProcess, subprocess.Popen[bytes]]]
    ) -> str | None:
        for node_id, (node, process) in enumerate(started, start=1):
            problem = _wait_ready(process, node, self._timeout_s)
            if problem is not None:
                return f"node {node_id}: {problem}"
        return None

    def _write_state(self, nodes: list[KafkaProcess]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "nodes": [
                {
                    "pid": n.pid,
                    "port": n.port,
                    "controller_port": n.controller_port,
                    "log": str(n.log_path),
                }
                for n in nodes
            ]
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self._state_path)


def _node_state(node: KafkaProcess) -> str:
    if not node.is_running():
        return "stopped"
    if accepts_connections("127.0.0.1", node.port):
        return "running"
    return "not answering"


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
