"""The real redis-server, configured from deploy/redis/redis.conf."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from omnirouter.devstack.network import free_port
from omnirouter.devstack.processes import is_running, spawn, stop_process, wait_until
from omnirouter.devstack.requirements import require_tool
from omnirouter.errors import StackError

_PROCESS_NAME = "redis-server"
_PORT_TAKEN = "Address already in use"


@dataclass(frozen=True)
class RedisProcess:
    """A running redis-server: its pid and where it listens."""

    pid: int
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """redis:// URL for clients."""
        return f"redis://127.0.0.1:{self.port}/0"

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return is_running(self.pid, expect=_PROCESS_NAME)

    def stop(self) -> None:
        """Stop the server (SIGTERM makes it flush the AOF), then make sure it is gone."""
        stop_process(self.pid, expect=_PROCESS_NAME, grace_s=15.0)


def answers_ping(port: int, *, timeout_s: float = 0.5) -> bool:
    """True when a Redis server on 127.0.0.1:port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def serves_as(port: int, pid: int, *, timeout_s: float = 0.5) -> bool:
    """True when the Redis server answering PING on 127.0.0.1:port is process ``pid``.

    ``free_port`` lets the port go before the server binds it, so another process (a second
    test process starting its own stack) may take it first. Our server then fails to bind and
    exits, but until it does, PING alone is answered by the other one: this tells them apart
    (``INFO server`` names the answering process).
    """
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        # PING first: a server still loading its AOF answers INFO but -LOADING to PING, and is
        # not ready until every write it had made durable is back (what restart_redis promises).
        return bool(client.ping()) and client.info("server").get("process_id") == pid
    except redis.RedisError:  # refused, timed out, or still loading
        return False
    finally:
        client.close()


def wait_until_serving(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
    """Wait until ``process`` (a redis-server) serves on ``port``; False if it exits first or
    ``timeout_s`` passes, or another server holds the port (ours then cannot bind it)."""
    ended = wait_until(
        lambda: process.poll() is not None or serves_as(port, process.pid),
        timeout_s=timeout_s,
        interval_s=0.05,
    )
    return ended and process.poll() is None


def start_redis(
    base_config: Path,
    data_dir: Path,
    *,
    timeout_s: float,
    tie_to_parent: bool = False,
    attempts: int = 3,
) -> RedisProcess:
    """Start redis-server on a free loopback port with its data under ``data_dir``.

    Raises:
        StackError: the server exited, or was not answering on its port in ``timeout_s``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    last_error = "not started"
    for _ in range(attempts):
        port = free_port()
        config = data_dir / "redis.conf"
        config.write_text(
            f"include {base_config}\n"
            f"port {port}\nbind 127.0.0.1\ndir {data_dir}\n"
            f'daemonize no\nlogfile ""\npidfile {data_dir / "redis.pid"}\n'
        )
        started, last_error = _launch(config, port, data_dir, timeout_s, tie_to_parent)
        if started is not None:
            return started
        if _PORT_TAKEN not in last_error:
            break
    raise StackError(f"redis-server did not start: {last_error}")


def restart_redis(
    data_dir: Path, port: int, *, timeout_s: float, tie_to_parent: bool = False
) -> RedisProcess:
    """Start redis-server again on its config, port and data (after a stop or a crash).

    The server reloads its append-only file before it answers PING, so this returns once
    every write it had made durable is back.

    Raises:
        StackError: the server exited, or was not answering on its port in ``timeout_s``.
    """
    started, error = _launch(data_dir / "redis.conf", port, data_dir, timeout_s, tie_to_parent)
    if started is None:
        raise StackError(f"redis-server did not restart: {error}")
    return started


def _launch(
    config: Path, port: int, data_dir: Path, timeout_s: float, tie_to_parent: bool
) -> tuple[RedisProcess | None, str]:
    server = require_tool("redis-server")
    log_path = data_dir / "redis.log"
    # spawn appends: what earlier starts and restarts wrote says nothing about this one.
    written_before = log_path.stat().st_size if log_path.exists() else 0
    process = spawn(
        [server, str(config)], log_path=log_path, cwd=data_dir, tie_to_parent=tie_to_parent
    )
    started = RedisProcess(process.pid, port, log_path)
    if wait_until_serving(process, port, timeout_s):
        return started, ""
    started.stop()
    code = process.poll()
    log = _read_from(log_path, written_before)
    tail = " ".join(log.strip().splitlines()[-1:])[:300]
    # The bind error is not redis's last line ("Failed listening on port ..., aborting").
    if _PORT_TAKEN in log:
        return None, f"port {port} is taken ({_PORT_TAKEN}): exit status {code}: {tail}"
    return None, f"exit status {code}: {tail}"


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""
