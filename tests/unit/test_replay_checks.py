"""The replay tests' comparison: entries of one instant in one order, every other order kept."""

from __future__ import annotations

from support.replay_checks import same_instant_in_one_order


def _state(*entries: tuple[int, str]) -> dict[str, object]:
    timeline = [{"at": at, "entry_id": entry_id} for at, entry_id in entries]
    return {"default": {"cases": {"{p:cus:default:c1}:timeline": timeline, "other": [3, 1]}}}


def test_entries_of_one_instant_compare_equal_in_either_order() -> None:
    live = _state((1, "a"), (2, "merge-note"), (2, "message"), (3, "b"))
    replayed = _state((1, "a"), (2, "message"), (2, "merge-note"), (3, "b"))
    assert live != replayed
    assert same_instant_in_one_order(live) == same_instant_in_one_order(replayed)


def test_entries_of_different_instants_keep_their_stored_order() -> None:
    in_order = _state((1, "a"), (2, "b"))
    swapped = _state((2, "b"), (1, "a"))
    assert same_instant_in_one_order(in_order) != same_instant_in_one_order(swapped)
    assert same_instant_in_one_order(swapped) == swapped  # not sorted by time either


def test_only_timelines_are_touched() -> None:
    state = _state((1, "b"), (1, "a"))
    cases = same_instant_in_one_order(state)["default"]["cases"]
    assert cases["other"] == [3, 1]
    assert [e["entry_id"] for e in cases["{p:cus:default:c1}:timeline"]] == ["a", "b"]
