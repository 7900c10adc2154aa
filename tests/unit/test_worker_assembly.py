"""`omnirouter worker` stops whatever it started, also when a later part fails to start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnirouter import assembly
from omnirouter.devstack import StackAddresses
from omnirouter.settings import Settings


class _Part:
    """A part of the worker that records its start and stop in the shared ``calls``."""

    def __init__(self, name: str, calls: list[str], *, fails_to_start: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fails_to_start = fails_to_start

    async def start(self) -> None:
        self.calls.append(f"start {self.name}")
        if self.fails_to_start:
            raise ConnectionError(f"{self.name} cannot reach the broker")

    async def stop(self) -> None:
        self.calls.append(f"stop {self.name}")

    async def aclose(self) -> None:
        self.calls.append(f"close {self.name}")


def _assemble(
    monkeypatch: pytest.MonkeyPatch, calls: list[str], *, failing: str | None = None
) -> None:
    """run_workers with its Kafka apps, Redis client and metrics server replaced by parts that
    record what is done to them (the stages and their stores are not built)."""
    import omnirouter.pipeline as pipeline
    import omnirouter.pipeline.cases.worker as case_worker
    import omnirouter.pipeline.dispatcher as dispatcher
    import omnirouter.pipeline.identity.worker as identity_worker

    def create_app(app_id: str, *_: Any, **__: Any) -> _Part:
        return _Part(app_id, calls, fails_to_start=app_id == failing)

    class Metrics:
        def stop(self) -> None:
            calls.append("stop metrics")

    monkeypatch.setattr(pipeline, "create_app", create_app)
    for module, name in (
        (identity_worker, "IdentityWorker"),
        (case_worker, "CaseWorker"),
        (dispatcher, "DispatcherWorker"),
    ):
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    for name in ("RedisIdentityStore", "RedisCaseStore", "RoutingStore", "RoutingEngine"):
        monkeypatch.setattr(assembly, name, lambda *_, **__: None)
    monkeypatch.setattr(assembly, "redis_client", lambda *_: _Part("redis", calls))
    monkeypatch.setattr(assembly, "count_round_trips", lambda client: client)
    monkeypatch.setattr(assembly, "serve_worker_metrics", lambda _: Metrics())


_ADDRESSES = StackAddresses(kafka_bootstrap_servers="127.0.0.1:9", redis_url="redis://127.0.0.1:9")


async def test_a_dispatcher_that_cannot_start_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    _assemble(monkeypatch, calls, failing="omnirouter-dispatcher")
    with pytest.raises(ConnectionError, match="cannot reach the broker"):
        await assembly.run_workers(Settings(), _ADDRESSES, asyncio.Event())
    assert calls == [
        "start omnirouter-pipeline",
        "start omnirouter-dispatcher",
        "stop omnirouter-dispatcher",  # undoes what of its start was done
        "stop omnirouter-pipeline",
        "stop metrics",
        "close redis",
    ]


async def test_a_pipeline_app_that_cannot_start_is_undone_and_the_dispatcher_never_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    _assemble(monkeypatch, calls, failing="omnirouter-pipeline")
    with pytest.raises(ConnectionError, match="cannot reach the broker"):
        await assembly.run_workers(Settings(), _ADDRESSES, asyncio.Event())
    assert calls == [
        "start omnirouter-pipeline",
        "stop omnirouter-pipeline",
        "stop metrics",
        "close redis",
    ]


async def test_a_stopped_worker_stops_its_parts_last_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    _assemble(monkeypatch, calls)
    stop = asyncio.Event()
    stop.set()
    await assembly.run_workers(Settings(), _ADDRESSES, stop)
    assert calls == [
        "start omnirouter-pipeline",
        "start omnirouter-dispatcher",
        "stop omnirouter-dispatcher",
        "stop omnirouter-pipeline",
        "stop metrics",
        "close redis",
    ]
