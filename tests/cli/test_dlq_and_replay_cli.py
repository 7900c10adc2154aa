"""`omnirouter dlq` and `omnirouter replay`: their decisions (pure) and their operator errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from omnirouter.events import DeadLetter, encode
from omnirouter.events.oversize import KEPT_WHEN_TOO_LARGE, oversized_dead_letter
from omnirouter.ops.dlq import DeadLetterRecord, describe, parse_since, plan_replay, render_table

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _record(letter: DeadLetter) -> DeadLetterRecord:
    return DeadLetterRecord(0, 7, int(NOW.timestamp() * 1000), letter)


def _letter(value: bytes, **kwargs: object) -> DeadLetter:
    return DeadLetter.for_payload(
        value,
        b"k",
        stage="identity",
        reason="invalid JSON",
        error_type="UndecodableEvent",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1h", NOW - timedelta(hours=1)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2d", NOW - timedelta(days=2)),
        ("2026-11-25T08:00:00+01:00", datetime(2026, 11, 25, 7, 0, tzinfo=UTC)),
    ],
)
def test_since_is_an_iso_time_or_how_long_ago(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-11-25T08:00:00", "-1w"])
def test_since_without_a_time_zone_or_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_since(text, NOW)


def test_a_listed_letter_shows_an_escaped_preview_never_the_whole_payload() -> None:
    row = describe(_record(_letter(b"\xff\x1b[31m" + b"x" * 1_000_000)))
    assert row["size"] == 1_000_006
    assert row["preview"].startswith("\\xff\\x1b[31m")  # no raw escape code reaches a terminal
    assert len(row["preview"]) == 61 and row["preview"].endswith("…")
    table = render_table([row])
    assert "1000006B" in table and len(table) < 400


def test_a_record_too_big_for_kafka_becomes_a_truncated_dead_letter_with_size_and_sha256() -> None:
    letter = _letter(b"y" * 1_500_000, source_topic="t.in", source_partition=0, source_offset=3)
    value = encode(letter)
    cut = oversized_dead_letter(letter, value, b"k", topic="t.dl", stage="identity", limit=1000)
    assert cut.original_value() == b"y" * KEPT_WHEN_TOO_LARGE
    assert cut.headers["original_bytes"] == "1500000"
    assert cut.headers["original_sha256"] == hashlib.sha256(b"y" * 1_500_000).hexdigest()
    assert cut.source_topic == "t.in" and cut.stage == "identity"
    # ...and it is not re-driven: only its start is kept.
    [plan] = plan_replay([_record(cut)], topic_prefix="t.")
    assert plan.target_topic is None
    assert "1500000-byte payload" in (plan.skipped_because or "")


def test_a_whole_letter_from_a_topic_goes_back_to_it() -> None:
    letter = _letter(b"{not json", source_topic="t.in", source_partition=0, source_offset=3)
    [plan] = plan_replay([_record(letter)], topic_prefix="t.")
    assert (plan.target_topic, plan.skipped_because) == ("t.in", None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["dlq", "list", "--since", "yesterday"], "--since 'yesterday' is neither"),
        (["dlq", "replay", "--limit", "0"], "--limit needs a positive number"),
        (["replay", "--from", "2026-11-25T08:00:00"], "needs a time zone"),
    ],
)
def test_a_bad_argument_ends_with_one_readable_line(args: list[str], needle: str) -> None:
    result = _cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("omnirouter: error: "), result.stderr
    assert needle in lines[0]
