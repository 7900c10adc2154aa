"""Rules files from the command line: validation at start-up, validate, explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OMNIROUTER = [sys.executable, "-m", "omnirouter.cli"]

GOOD = """\
version: 1
queues:
  - id: billing
    skills: {billing: 3}
    base_priority: 10
  - id: general
rules:
  - id: billing-words
    when: {intents: [billing]}
    route_to: billing
    priority_boost: 5
default_queue: general
"""

BAD = """\
version: 1
queues:
  - id: billing
  - id: general
rules:
  - id: to-nowhere
    route_to: sales
default_queue: general
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNIROUTER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_an_invalid_rules_file_stops_every_process_at_start_up_with_file_line_and_reason(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(BAD)
    env = _env(
        OMNIROUTER_ROUTING__RULES_FILE=str(rules),
        # Unreachable on purpose: the rules are checked before any connection is tried.
        OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1",
        OMNIROUTER_REDIS__URL="redis://127.0.0.1:1/0",
        OMNIROUTER_DEVSTACK__STATE_DIR=str(tmp_path / "state"),
    )
    for command in (["worker"], ["serve"], ["run"], ["rules", "validate", str(rules)]):
        result = _run(command, env)
        assert result.returncode == 2, (command, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [
            f"omnirouter: error: {rules}:7: rules.0.route_to: "
            "rule 'to-nowhere' routes to unknown queue 'sales'"
        ], command
        assert "Traceback" not in result.stderr


def test_a_misspelt_field_names_its_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD.replace("    base_priority: 10", "    base_priorty: 10"))
    result = _run(["rules", "validate", str(rules)], _env())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"omnirouter: error: {rules}:5: queues.0.base_priorty: Extra inputs are not permitted"
    )


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    result = _run(["rules", "validate", str(rules)], _env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{rules}: ok (2 queues, 1 rules)"


def test_explain_dry_runs_the_rules_on_one_event(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "occurred_at": "2026-11-24T09:30:00+00:00",
                "channel": "email",
                "direction": "inbound",
                "identifiers": [{"kind": "email", "value": "ann@example.com"}],
                "content": {"text": "I was charged twice on my last invoice", "subject": "Invoice"},
                "provider": {"provider": "smtp"},
                "attributes": {"tier": "vip"},
            }
        )
    )
    result = _run(["rules", "explain", str(rules), "--event", str(event), "--json"], _env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rule"], report["queue"], report["open"]) == ("billing-words", "billing", True)
    assert report["priority"] == 10 + 5 + 20  # base + rule + VIP
    assert report["intents"] == ["billing"]
    assert report["requirements"]["skills"] == {"billing": 3}
    assert any("rule billing-words matched" in r for r in report["reasons"])


def test_the_example_rules_file_in_deploy_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "routing" / "rules.example.yaml"
    result = _run(["rules", "validate", str(example)], _env())
    assert result.returncode == 0, result.stderr
    assert "ok (3 queues, 3 rules)" in result.stdout
