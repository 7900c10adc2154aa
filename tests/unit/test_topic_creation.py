"""ensure_topics returns once the topics it created can be used, not when the broker accepted
the request: a consumer group formed in between is assigned none of their partitions."""

from __future__ import annotations

from typing import Any

import pytest

from omnirouter import connections
from omnirouter.connections import TopicRequest, ensure_topics


class _Admin:
    """What ensure_topics asks of kafka-python's admin client, in the order it asks it."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.calls: list[tuple[str, Any]] = []

    def list_topics(self) -> list[str]:
        return sorted(self.existing)

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": 1}]}

    def create_topics(self, topics: list[Any]) -> None:
        self.calls.append(("create", sorted(t.name for t in topics)))

    def wait_for_topics(self, names: list[str], timeout_ms: int) -> None:
        self.calls.append(("wait", sorted(names)))

    def close(self) -> None:
        self.calls.append(("close", None))


def test_created_topics_are_waited_for_before_ensure_topics_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = _Admin(existing={"old"})
    monkeypatch.setattr(connections, "admin_client", lambda **_: admin)
    requested = [TopicRequest("old", 3), TopicRequest("new-a", 3), TopicRequest("new-b", 1)]

    assert ensure_topics("127.0.0.1:9", requested) == ["new-a", "new-b"]
    # Only the topics it created: one that existed is usable already.
    assert admin.calls == [
        ("create", ["new-a", "new-b"]),
        ("wait", ["new-a", "new-b"]),
        ("close", None),
    ]


def test_nothing_to_create_means_nothing_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _Admin(existing={"old"})
    monkeypatch.setattr(connections, "admin_client", lambda **_: admin)
    assert ensure_topics("127.0.0.1:9", [TopicRequest("old", 3)]) == []
    assert admin.calls == [("close", None)]
