"""Session fixtures: a real Kafka broker and redis-server, unique topics and key prefixes."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from faults.report import FAULT_TABLE, SCALE_TABLE
from omnirouter.connections import TopicRequest, ensure_topics
from omnirouter.devstack import StackAddresses, processes
from support.stack import provision, sync_redis, wait_for_group_coordinator
from support.xdist_grouping import pytest_xdist_make_scheduler  # noqa: F401 - a hook


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackAddresses]:
    """The session's real Kafka + Redis. A stack that cannot start fails the test; never skips."""
    source, running = provision(tmp_path_factory.mktemp("devstack"))
    try:
        addresses = running.__enter__()
    except Exception as exc:
        pytest.fail(f"the real Kafka/Redis stack ({source}) did not start: {exc}", pytrace=False)
    try:
        wait_for_group_coordinator(addresses.kafka_bootstrap_servers)
        yield addresses
    finally:
        running.__exit__(None, None, None)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The fault and cluster scale scenarios' tables (tests/faults/report.py). Printed by the
    process that received every test's report: pytest's own, or xdist's controller (an xdist
    worker, which saw only its own scenarios, would write a partial artifact)."""
    if hasattr(config, "workerinput"):
        return
    for table in (FAULT_TABLE, SCALE_TABLE):
        table.show(terminalreporter, config.rootpath)


_FAILED = pytest.StashKey[bool]()
# Where a failed scenario's process logs are kept: CI keeps test-artifacts/, and pytest's
# temporary directories are gone by the time anyone reads a failure.
FAILED_LOGS = Path("test-artifacts") / "failed-logs"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed, for fixtures that keep evidence then."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def keep_logs_if_failed(request: pytest.FixtureRequest) -> Callable[[Path], None]:
    """Call with a directory of process logs at teardown: copied to test-artifacts/ when the
    test failed, so a rare failure in CI can still be read afterwards."""

    def keep(logs: Path) -> None:
        if request.node.stash.get(_FAILED, False) and logs.is_dir():
            target = FAILED_LOGS / re.sub(r"[^\w.-]+", "-", request.node.nodeid)
            shutil.copytree(logs, target, dirs_exist_ok=True)
            print(f"logs of the failed test kept in {target}")

    return keep


@pytest.fixture(autouse=True, scope="session")
def _in_process_workers_never_end_the_test_run() -> Iterator[None]:
    """Workers started in pytest's own process (support/workers.py) must not end it: a batch
    that cannot finish on stop raises there instead. What `omnirouter worker` does then is
    tested in unit/test_finish_on_stop.py and by the fault scenarios."""

    def refuse(reason: str) -> None:
        raise RuntimeError(f"an in-process worker would have ended the process: {reason}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("omnirouter.pipeline.stream.end_process_now", refuse)
        yield


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """A short id naming this test, unique across runs sharing a broker."""
    return f"{_slug(request.node.name)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_factory(stack: StackAddresses, unique_id: str) -> Callable[..., str]:
    """Create topics private to this test: ``topic_factory("inbound", partitions=3)``."""

    def create(name: str, *, partitions: int = 1) -> str:
        topic = f"test.{unique_id}.{name}"
        ensure_topics(stack.kafka_bootstrap_servers, [TopicRequest(topic, partitions)])
        return topic

    return create


@pytest.fixture
def redis_prefix(stack: StackAddresses, unique_id: str) -> Iterator[str]:
    """A Redis key prefix private to this test; its keys are deleted afterwards."""
    prefix = f"test:{unique_id}"
    yield prefix
    client = sync_redis(stack.redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client(stack: StackAddresses) -> Iterator[redis.Redis]:
    """A synchronous Redis client on the session's server."""
    client = sync_redis(stack.redis_url)
    yield client
    client.close()


# Which test (or a fixture it was the first to use) started each server devstack holds, to name
# it if it outlives the session.
_STARTED_DURING: dict[int, str] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Note the servers each test (with its fixtures) left in devstack's hands."""
    before = set(processes._CHILDREN)
    try:
        return (yield)
    finally:
        for pid in set(processes._CHILDREN) - before:
            _STARTED_DURING.setdefault(pid, item.nodeid)


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears the session's fixtures down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Name every server this pytest process (each xdist worker for itself) started through
    devstack that is still running once the session's fixtures are gone (Python would only
    warn "subprocess N is still running" at exit). Servers a test starts in a subprocess
    (``omnirouter devstack up``) are that subprocess's to name."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    kept = Path("test-artifacts") / f"leftover-processes-{worker}.txt"
    left = [pid for pid, child in list(processes._CHILDREN.items()) if child.poll() is None]
    if not left:
        kept.unlink(missing_ok=True)  # an earlier run's
        return
    lines = [
        f"pid {pid}: {processes.command_line(pid)[:160]} (started by "
        f"{_STARTED_DURING.get(pid, 'no test')} or a fixture it was the first to use)"
        for pid in left
    ]
    report = "servers still running at the end of the session:\n" + "\n".join(lines)
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(report + "\n")
    print(report)  # shown when pytest runs without xdist
