"""Events of a customer merged into another while they were in flight follow the merges: to
the survivor, and to the survivor's survivor if a merge folds that one meanwhile; never lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from omnirouter.events import DeadLetter
from omnirouter.pipeline.app import create_app
from omnirouter.pipeline.cases import worker as worker_module
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate
from omnirouter.pipeline.cases.worker import MAX_REDIRECTS, CaseWorker
from omnirouter.pipeline.stream import Outgoing
from omnirouter.settings import CaseSettings, PipelineSettings

ENTRY = {"event_id": "7d1c3f0e-2b7a-4c55-9a51-0c4f1f0a2b11", "type": "inbound"}


class MergingStore:
    """Stands in for RedisCaseStore: ``folded`` says, per call, which customers the script
    found folded (and into whom); ``current`` is where a lookup of the chain from a customer
    ends (a customer it does not name is not folded)."""

    def __init__(self, folded: list[dict[str, str]], current: dict[str, str]) -> None:
        self.calls: list[dict[CustomerRef, list[dict[str, Any]]]] = []
        self.lookups: list[dict[CustomerRef, str]] = []
        self._folded = folded
        self._current = current

    async def apply(
        self, work: Mapping[CustomerRef, Sequence[dict[str, Any]]]
    ) -> dict[CustomerRef, CustomerUpdate]:
        folded = self._folded[min(len(self.calls), len(self._folded) - 1)]
        self.calls.append({ref: list(entries) for ref, entries in work.items()})
        return {ref: CustomerUpdate(folded_into=folded.get(ref[1], "")) for ref in work}

    async def current_customers(self, starts: Mapping[CustomerRef, str]) -> dict[CustomerRef, str]:
        self.lookups.append(dict(starts))
        return {ref: self._current.get(start, start) for ref, start in starts.items()}


async def _apply(store: MergingStore, unique_id: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    published: list[Outgoing] = []

    async def capture(_app: Any, outgoing: Sequence[Outgoing], **_: Any) -> None:
        published.extend(outgoing)

    monkeypatch.setattr(worker_module, "publish", capture)
    worker = CaseWorker(
        create_app(f"redirects-{unique_id}", "127.0.0.1:9"),
        store,  # type: ignore[arg-type]
        settings=CaseSettings(),
        pipeline=PipelineSettings(),
        topic_prefix=f"t.{unique_id}.",
    )
    await worker._apply_and_announce({("default", "a"): [ENTRY]}, [])
    return published


async def test_events_follow_a_survivor_that_is_merged_again_meanwhile(
    unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a was folded into b; by the time a's events reach b, b was folded into c.
    store = MergingStore([{"a": "b"}, {"b": "c"}, {}], current={})
    published = await _apply(store, unique_id, monkeypatch)
    assert [list(call) for call in store.calls] == [
        [("default", "a")],
        [("default", "b")],
        [("default", "c")],
    ]
    assert store.calls[-1][("default", "c")] == [ENTRY]
    assert published == []  # nothing refused, nothing dead-lettered
    # The first redirect goes where the script said, without a lookup; the second follows
    # the chain from the customer the script named.
    assert store.lookups == [{("default", "b"): "c"}]


async def test_a_chain_of_earlier_merges_is_followed_in_one_lookup(
    unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a was folded into b, b long ago into c, and c into d: after the script names b, then c,
    # one lookup follows the chain from c to its end.
    store = MergingStore([{"a": "b"}, {"b": "c"}, {}], current={"c": "d"})
    published = await _apply(store, unique_id, monkeypatch)
    assert [list(call) for call in store.calls] == [
        [("default", "a")],
        [("default", "b")],
        [("default", "d")],
    ]
    assert store.calls[-1][("default", "d")] == [ENTRY]
    assert store.lookups == [{("default", "b"): "c"}]
    assert published == []


async def test_events_still_folded_after_every_redirect_become_dead_letters(
    unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MergingStore([{"a": "a2", "a2": "a2"}], current={"a": "a2"})
    published = await _apply(store, unique_id, monkeypatch)
    assert len(store.calls) == 1 + MAX_REDIRECTS
    (letter,) = published
    assert isinstance(letter.event, DeadLetter)
    assert "merged again" in letter.event.reason
    assert letter.event.error_type == "MergedDuringBatch"
    assert str(letter.event.causation_id) == ENTRY["event_id"]
