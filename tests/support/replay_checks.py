"""Shared steps of the replay tests: pointing the CLI at the test's stack, waiting for a fold,
and showing where two exported states differ."""

from __future__ import annotations

from typing import Any

import pytest

from omnirouter import cli
from omnirouter.devstack import StackAddresses
from omnirouter.events import CaseEvent, CaseEventKind
from support.kafka import TopicReader


async def applied_fold(reader: TopicReader, topic: Any) -> CaseEvent:
    """Wait for the case worker to fold the merged customer in."""
    found = await reader.wait_for(
        lambda r: [
            e
            for e in r.decoded(topic("cases.events"), CaseEvent)
            if e.kind == CaseEventKind.FOLDED or e.case.folded_case_ids
        ],
        what="the merge folded into the survivor's case",
    )
    return found[-1]


def point_cli_at(
    monkeypatch: pytest.MonkeyPatch, stack: StackAddresses, prefix: str, redis_prefix: str
) -> None:
    for name, value in {
        "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "OMNIROUTER_KAFKA__TOPIC_PREFIX": prefix,
        "OMNIROUTER_REDIS__URL": stack.redis_url,
        "OMNIROUTER_REDIS__KEY_PREFIX": redis_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    # The command's logging set-up would outlive the test (handlers on pytest's captured streams).
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)


def same_instant_in_one_order(state: Any) -> Any:
    """``state`` (an export) with the timeline entries that share one ``at`` in entry-id order.

    Entries with the same instant have no order of their own: a merging message and the merge
    it causes carry the message's time, and live the case worker applies them in whichever order
    its two inputs deliver them, while a replay applies the log's order. Every other order
    (between different instants) is compared as stored.
    """
    if isinstance(state, dict):
        return {
            key: _same_instant_sorted(value)
            if isinstance(key, str) and key.endswith(":timeline") and isinstance(value, list)
            else same_instant_in_one_order(value)
            for key, value in state.items()
        }
    return state


def _same_instant_sorted(entries: list[Any]) -> list[Any]:
    ordered: list[Any] = []
    run: list[Any] = []
    for entry in entries:
        if run and entry.get("at") != run[0].get("at"):
            ordered.extend(sorted(run, key=lambda e: str(e.get("entry_id"))))
            run = []
        run.append(entry)
    ordered.extend(sorted(run, key=lambda e: str(e.get("entry_id"))))
    return ordered


def differences(live: Any, rebuilt: Any, path: str = "") -> list[str]:
    """Where two exported states differ, for a failure message a person can read."""
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        found = []
        for key in sorted(set(live) | set(rebuilt), key=str):
            if key not in live or key not in rebuilt:
                found.append(f"{path}/{key}: only in {'live' if key in live else 'rebuilt'}")
            else:
                found.extend(differences(live[key], rebuilt[key], f"{path}/{key}"))
        return found
    return [] if live == rebuilt else [f"{path}: live {live!r:.3000} != rebuilt {rebuilt!r:.3000}"]
