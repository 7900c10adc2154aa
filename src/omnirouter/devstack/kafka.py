"""The real Apache Kafka broker (KRaft, one node), run from the jars deploy/kafka/pom.xml pins."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from omnirouter.devstack.network import accepts_connections, free_port
from omnirouter.devstack.processes import is_running, spawn, stop_process
from omnirouter.devstack.requirements import require_tool
from omnirouter.errors import MissingToolError, StackError

BROKER_MAIN = "kafka.Kafka"
_STARTED_LINE = "Kafka Server started"
_PORT_TAKEN = re.compile(r"Address already in use|BindException")
_MIN_JAVA = 17

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""


@dataclass(frozen=True)
class KafkaProcess:
    """A running broker: its pid and where it listens."""

    pid: int
    port: int
    controller_port: int
    log_path: Path

    @property
    def bootstrap_servers(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        """True while the broker's JVM is alive."""
        return is_running(self.pid, expect=BROKER_MAIN)

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM lets it close its logs), then make sure it is gone."""
        stop_process(self.pid, expect=BROKER_MAIN, grace_s=30.0)


def _check_java(java: str) -> None:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', result.stderr + result.stdout)
    if match is None or int(match.group(1)) < _MIN_JAVA:
        found = match.group(1) if match else "unknown"
        raise MissingToolError(
            f"Kafka 4 needs Java {_MIN_JAVA}+, found {found} at {java} "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )


def fetch_broker(pom: Path, cache_dir: Path) -> Path:
    """The folder of broker jars for ``pom``, fetched with Maven once and reused after.

    The cache is keyed by the POM's content, so changing the pinned version fetches anew and
    two checkouts with the same POM share one download. A lock makes concurrent callers wait for
    one fetch instead of racing.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    root = cache_dir / "kafka" / digest
    libs = root / "libs"
    complete = root / ".complete"
    if complete.is_file():
        return libs
    mvn = require_tool("mvn")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.is_file():
            return libs
        staging = root / f"libs.{uuid.uuid4().hex}"
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise StackError(f"mvn could not fetch the Kafka broker: {' | '.join(tail)}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        complete.write_text(digest + "\n")
    return libs


def _server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    # One node: every replication factor and min ISR is 1, and the first consumer group
    # rebalance is not delayed (the default 3 s delay would slow every test that joins a group).
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir / "log"}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
delete.topic.enable=true
"""


# What Kafka's own launcher (bin/kafka-run-class.sh, KAFKA_JVM_PERFORMANCE_OPTS) runs every
# broker and tool with. Without the 20 ms pause goal, G1 aims at 200 ms and lets the young
# generation grow to hundreds of MiB (measured: 450 MiB collected in an 18 ms pause), and
# every request in flight waits out the pause.
JVM_PERFORMANCE_OPTIONS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def _java_command(java: str, libs: Path, config: Path, main: str, heap: str) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}" if main == BROKER_MAIN else "-Xms64m",
        *JVM_PERFORMANCE_OPTIONS,
        f"-Dlog4j2.configurationFile={config}",
        "-cp",
        f"{libs}/*",
        main,
    ]


def start_kafka(
    libs: Path,
    data_dir: Path,
    *,
    heap: str,
    timeout_s: float,
    tie_to_parent: bool = False,
    attempts: int = 3,
) -> KafkaProcess:
    """Format a fresh KRaft log under ``data_dir`` and start the broker on free loopback ports.

    Returns once the broker says it started and accepts connections.

    Raises:
        StackError: the broker exited or did not become ready in ``timeout_s``.
    """
    java = require_tool("java")
    _check_java(java)
    data_dir.mkdir(parents=True, exist_ok=True)
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(_LOG4J2)
    last_error = "not started"
    for _ in range(attempts):
        port, controller_port = free_port(), free_port()
        if port == controller_port:
            continue
        shutil.rmtree(data_dir / "log", ignore_errors=True)
        config = data_dir / "server.properties"
        config.write_text(_server_properties(data_dir, port, controller_port))
        _format_storage(java, libs, log4j, config)
        log_path = data_dir / "kafka.log"
        log_path.unlink(missing_ok=True)
        process = spawn(
            [*_java_command(java, libs, log4j, BROKER_MAIN, heap), str(config)],
            log_path=log_path,
            cwd=data_dir,
            tie_to_parent=tie_to_parent,
        )
        broker = KafkaProcess(process.pid, port, controller_port, log_path)
        outcome = _wait_ready(process, broker, timeout_s)
        if outcome is None:
            return broker
        broker.stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        last_error = outcome
        if not _PORT_TAKEN.search(_read(log_path)):
            break
    raise StackError(f"Kafka broker did not start: {last_error}")


def restart_kafka(
    libs: Path,
    data_dir: Path,
    port: int,
    controller_port: int,
    *,
    heap: str,
    timeout_s: float,
    tie_to_parent: bool = False,
) -> KafkaProcess:
    """Start the broker again on its existing log and ports (after a stop or a crash).

    Raises:
        StackError: the broker exited or did not become ready in ``timeout_s``.
    """
    java = require_tool("java")
    config = data_dir / "server.properties"
    log4j = data_dir / "log4j2.properties"
    log_path = data_dir / "kafka.log"
    log_path.unlink(missing_ok=True)
    process = spawn(
        [*_java_command(java, libs, log4j, BROKER_MAIN, heap), str(config)],
        log_path=log_path,
        cwd=data_dir,
        tie_to_parent=tie_to_parent,
    )
    broker = KafkaProcess(process.pid, port, controller_port, log_path)
    outcome = _wait_ready(process, broker, timeout_s)
    if outcome is not None:
        broker.stop()
        raise StackError(f"Kafka broker did not restart: {outcome}")
    return broker


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` prints one."""
    # StorageTool wants a base64url cluster id of 16 bytes without padding, as random-uuid prints.
    # Like Kafka's own Uuid.randomUuid, never one starting with "-": the tool's argument parser
    # would read it as an option ("argument --cluster-id/-t: expected one argument").
    cid = "-"
    while cid.startswith("-"):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cid


def _format_storage(
    java: str, libs: Path, log4j: Path, config: Path, *, cluster_id: str | None = None
) -> None:
    # One node formats its own dynamic quorum (--standalone); the nodes of a cluster share the
    # given id and name their voters statically in controller.quorum.voters instead.
    quorum = ["--standalone"] if cluster_id is None else []
    cid = new_cluster_id() if cluster_id is None else cluster_id
    result = subprocess.run(
        [
            *_java_command(java, libs, log4j, "kafka.tools.StorageTool", "256m"),
            "format", "-t", cid, "-c", str(config), *quorum, "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-2:]
        raise StackError(f"kafka StorageTool format failed: {' | '.join(tail)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _wait_ready(
    process: subprocess.Popen[bytes], broker: KafkaProcess, timeout_s: float
) -> str | None:
    """None when ready, else why not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            errors = [
                ln
                for ln in _read(broker.log_path).splitlines()
                if "ERROR" in ln or "Exception" in ln
            ]
            detail = errors[-1] if errors else f"see {broker.log_path}"
            return f"the JVM exited with status {code}: {detail[:300]}"
        if _STARTED_LINE in _read(broker.log_path) and accepts_connections(
            "127.0.0.1", broker.port
        ):
            return None
        time.sleep(0.2)
    return f"no '{_STARTED_LINE}' within {timeout_s:.0f} s (see {broker.log_path})"
