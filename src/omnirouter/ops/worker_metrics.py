"""``/metrics`` of `omnirouter worker`: prometheus_client's own HTTP server on a thread.

The worker has no web framework; the small server prometheus_client ships is all it needs. It
listens on ``api.host`` (the interface this deployment serves on, loopback by default) and
``ops.worker_metrics_port`` (0: a free port, logged; ``omnirouter run`` passes one it chose to
both processes, so the serve process's dashboard knows where to scrape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server

from omnirouter.devstack.network import free_port
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import REGISTRY
from omnirouter.settings import Settings

log = get_logger(__name__)


@dataclass
class WorkerMetricsServer:
    """The running server; :meth:`stop` closes its socket and thread."""

    url: str
    _server: Any
    _thread: Any

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_worker_metrics(settings: Settings) -> WorkerMetricsServer:
    """Serve omnirouter's registry at ``http://{api.host}:{ops.worker_metrics_port}/metrics``.

    Raises:
        OSError: the port is taken (the worker then stops at start, saying so).
    """
    host = settings.api.host
    port = settings.ops.worker_metrics_port or free_port()
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    url = f"http://{host}:{port}/metrics"
    log.info("worker metrics listening", url=url)
    return WorkerMetricsServer(url, server, thread)
