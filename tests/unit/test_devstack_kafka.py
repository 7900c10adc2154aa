"""devstack's Kafka start-up details that once made it flaky."""

from __future__ import annotations

import pytest


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leading "-" makes StorageTool read the id as an option (a flaky start-up failure)."""
    import uuid

    from omnirouter.devstack import kafka

    ids = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(int=7)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(ids))
    seen: list[list[str]] = []

    class FormatCalledError(Exception):
        pass

    def fake_run(argv: list[str], **_: object) -> object:
        seen.append(argv)
        raise FormatCalledError

    monkeypatch.setattr(kafka.subprocess, "run", fake_run)
    with pytest.raises(FormatCalledError):
        kafka._format_storage("java", kafka.Path("/libs"), kafka.Path("/l.props"), kafka.Path("/s"))
    cluster_id = seen[0][seen[0].index("-t") + 1]
    assert not cluster_id.startswith("-")
