"""The routing rules file: valid YAML becomes rules, anything else one FILE:LINE: where: why."""

from __future__ import annotations

import errno
import json
import os
from datetime import date
from pathlib import Path

import pytest

from omnirouter.events import Channel
from omnirouter.pipeline.routing.hours import Weekday
from omnirouter.pipeline.routing.loader import (
    RulesFileError,
    load_rules,
    parse_rules,
    rules_from_settings,
)
from omnirouter.pipeline.routing.rules import (
    DEFAULT_RULES,
    Queue,
    RoutingRules,
    rules_json_schema,
)

SOURCE = "rules.yaml"

VALID = """\
version: 1
capacity: {email: 4, voice: 1}
queues:
  - id: billing
    name: Billing
    skills: {billing: 3, refunds: 2}
    languages: [en, de]
    base_priority: 10
    business_hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-12:00", "13:00-17:00"]
        fri: ["09:00-15:00"]
      closed_dates: [2024-12-25]
    when_closed: overflow
    overflow_to: general
    escalation:
      - after_s: 300
        widen: {min_proficiency: 1}
      - after_s: 900
        move_to: general
        priority_boost: 5
  - id: general
rules:
  - id: billing-intent
    when: {intents: [billing, refund], channels: [email, sms]}
    route_to: billing
    priority_boost: 5
default_queue: general
"""


def _error(text: str) -> str:
    with pytest.raises(RulesFileError) as caught:
        parse_rules(text, source=SOURCE)
    return str(caught.value)


# --- a valid file --------------------------------------------------------------------------


def test_valid_file_parses_into_queues_rules_and_typed_values() -> None:
    rules = parse_rules(VALID, source=SOURCE)

    assert [q.id for q in rules.queues] == ["billing", "general"]
    assert rules.default_queue == "general"
    assert rules.capacity == {Channel.EMAIL: 4, Channel.VOICE: 1}
    billing = rules.queue("billing")
    assert billing.skills == {"billing": 3, "refunds": 2}
    assert billing.languages == ("en", "de")
    assert billing.overflow_to == "general"
    assert [s.after_s for s in billing.escalation] == [300, 900]
    assert billing.escalation[0].widen is not None
    assert billing.escalation[0].widen.min_proficiency == 1
    assert billing.escalation[1].move_to == "general"
    hours = billing.business_hours
    assert hours is not None
    assert hours.weekly[Weekday.MON] == ("09:00-12:00", "13:00-17:00")
    assert hours.closed_dates == (date(2024, 12, 25),)
    (rule,) = rules.rules
    assert rule.route_to == "billing"
    assert rule.when.channels == (Channel.EMAIL, Channel.SMS)
    assert rule.when.intents == ("billing", "refund")


def test_unset_values_take_their_documented_defaults() -> None:
    rules = parse_rules("queues: [{id: general}]\ndefault_queue: general\n", source=SOURCE)

    general = rules.queue("general")
    assert general.business_hours is None
    assert general.distribution == "most_spare_capacity"
    assert general.offer_timeout_s == 30
    assert (general.sla.first_response_s, general.sla.next_response_s) == (3600, 3600)
    assert rules.rules == ()
    assert rules.capacity[Channel.VOICE] == 1
    assert rules.boosts.vip_tiers == ("vip",)


def test_load_rules_reads_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_rules(path) == parse_rules(VALID, source=SOURCE)


# --- invalid files: exactly "<source>:<line>: <where>: <reason>" ---------------------------


def test_proficiency_out_of_range_points_at_the_skills_key_of_the_queue() -> None:
    text = """\
queues:
  - id: billing
    skills:
      refunds: 2
      billing: 9
  - id: general
default_queue: general
"""
    message = _error(text)

    # The 1-5 check validates the skills mapping as a whole, so pydantic locates the error at
    # queues.0.skills and the loader reports the line of the `skills:` key (3), not the line of
    # `billing: 9` (5). The message still names the skill and the bad level.
    assert message == (
        "rules.yaml:3: queues.0.skills: skill 'billing': proficiency must be 1-5, not 9"
    )
    assert text.splitlines()[3 - 1].strip() == "skills:"


def test_proficiency_that_is_not_a_number_points_at_the_line_of_that_skill() -> None:
    text = """\
queues:
  - id: billing
    skills:
      refunds: 2
      billing: expert
  - id: general
default_queue: general
"""
    message = _error(text)

    # A type error is located at the skill's own key, so its line is the skill's line.
    assert message.startswith("rules.yaml:5: queues.0.skills.billing: Input should be")
    assert text.splitlines()[5 - 1].strip() == "billing: expert"


INVALID = [
    pytest.param(
        """\
queues:
  - id: general
rules:
  - id: r1
    route_to: nowhere
default_queue: general
""",
        "rules.yaml:5: rules.0.route_to: rule 'r1' routes to unknown queue 'nowhere'",
        id="unknown-route_to-queue",
    ),
    pytest.param(
        """\
# support desk
queues:
  - id: general
default_queue: nowhere
""",
        "rules.yaml:4: default_queue: 'nowhere' is not a queue",
        id="unknown-default_queue",
    ),
    pytest.param(
        """\
queues:
  - id: general
  - id: billing
  - id: general
default_queue: general
""",
        # The second use of the id is the one at fault.
        "rules.yaml:4: queues.2.id: queue id 'general' is used twice",
        id="duplicate-queue-ids",
    ),
    pytest.param(
        """\
queues:
  - id: general
default_queue: general
colour: blue
""",
        "rules.yaml:4: colour: Extra inputs are not permitted",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """\
queues:
  - id: general
rules:
  - id: r1
    when:
      text_regex: "(unclosed"
    route_to: general
default_queue: general
""",
        "rules.yaml:6: rules.0.when.text_regex: "
        "bad regex: missing ), unterminated subpattern at position 0",
        id="bad-text_regex",
    ),
    pytest.param(
        """\
queues:
  - id: general
    escalation:
      - after_s: 600
      - after_s: 60
  - id: billing
default_queue: general
""",
        "rules.yaml:2: queues.0: escalation steps must be in increasing after_s order",
        id="escalation-out-of-order",
    ),
    pytest.param(
        """\
queues:
  - id: general
  - id: night
    when_closed: overflow
default_queue: general
""",
        "rules.yaml:4: queues.1.when_closed: overflow needs overflow_to",
        id="overflow-without-overflow_to",
    ),
    pytest.param(
        """\
queues:
  - id: general
    business_hours:
      timezone: Mars/Olympus
      weekly:
        mon: ["09:00-17:00"]
  - id: billing
default_queue: general
""",
        "rules.yaml:4: queues.0.business_hours.timezone: unknown time zone 'Mars/Olympus'",
        id="unknown-time-zone",
    ),
    pytest.param(
        """\
queues:
  - id: general
    business_hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["17:00-09:00"]
  - id: billing
default_queue: general
""",
        "rules.yaml:6: queues.0.business_hours.weekly.mon: '17:00-09:00' ends before it starts",
        id="weekly-range-ends-before-it-starts",
    ),
    pytest.param(
        """\
queues:
  - id: general
    overflow_to: elsewhere
  - id: billing
default_queue: general
""",
        "rules.yaml:3: queues.0.overflow_to: "
        "queue 'general' overflows to unknown queue 'elsewhere'",
        id="unknown-overflow_to-queue",
    ),
    pytest.param(
        """\
queues:
  - id: general
    escalation:
      - after_s: 60
      - after_s: 120
        move_to: supervisors
default_queue: general
""",
        "rules.yaml:6: queues.0.escalation.1.move_to: "
        "queue 'general' escalates to unknown queue 'supervisors'",
        id="unknown-escalation-move_to-queue",
    ),
    pytest.param(
        """\
queues: [{id: general}]
rules:
  - {id: r1, route_to: general}
  - {id: r1, route_to: general}
default_queue: general
""",
        "rules.yaml:4: rules.1.id: rule id 'r1' is used twice",
        id="duplicate-rule-ids",
    ),
    pytest.param(
        """\
capacity:
  fax: 2
queues: [{id: general}]
default_queue: general
""",
        "rules.yaml:2: capacity.fax.[key]: "
        "Input should be 'email', 'sms', 'whatsapp', 'voice', 'webchat', 'webform' or 'api'",
        id="unknown-capacity-channel",
    ),
    pytest.param(
        "- general\n",
        "rules.yaml:1: rules: Input should be a valid dictionary or instance of RoutingRules",
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_file_raises_one_error_naming_source_line_where_and_why(
    text: str, expected: str
) -> None:
    assert _error(text) == expected


def test_only_the_first_problem_is_reported() -> None:
    """Follow-on errors (a list left too short by its bad item) would only mislead."""
    text = """\
queues:
  - id: general
    base_priority: 500
  - id: billing
default_queue: general
colour: blue
"""
    assert _error(text) == (
        "rules.yaml:3: queues.0.base_priority: Input should be less than or equal to 100"
    )


def test_one_problem_in_a_single_queue_file_is_reported_without_more() -> None:
    text = """\
queues:
  - id: general
    when_closed: overflow
default_queue: general
"""
    assert _error(text) == "rules.yaml:3: queues.0.when_closed: overflow needs overflow_to"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "queues:\n  - id: general\n default_queue: general\n",
            "rules.yaml:3: not valid YAML: expected <block end>, but found '<block mapping start>'",
            id="bad-indentation",
        ),
        pytest.param(
            "queues:\n  - id: general\n\tname: tabbed\ndefault_queue: general\n",
            "rules.yaml:3: not valid YAML: found character '\\t' that cannot start any token",
            id="tab-indentation",
        ),
    ],
)
def test_malformed_yaml_names_the_line_of_the_problem(text: str, expected: str) -> None:
    assert _error(text) == expected


@pytest.mark.parametrize("text", ["", "\n\n", "# routing rules: to do\n"])
def test_empty_file_is_an_error_at_line_one(text: str) -> None:
    assert _error(text) == "rules.yaml:1: the file is empty"


def test_control_character_is_reported_as_malformed_yaml() -> None:
    message = _error("queues:\n  - id: general\ndefault_queue: gen\x07eral\n")
    assert message.startswith("rules.yaml:3: not valid YAML")


def test_unknown_yaml_tag_is_reported_as_a_rules_file_error() -> None:
    message = _error("queues:\n  - id: general\ndefault_queue: !env QUEUE\n")
    assert message.startswith("rules.yaml:3: ")


# --- files on disk -------------------------------------------------------------------------


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "routing.yaml"
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    assert str(caught.value) == (f"{path}: cannot read the rules file: {os.strerror(errno.ENOENT)}")


def test_invalid_file_on_disk_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("queues:\n  - id: general\ndefault_queue: general\nextra: 1\n")
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    assert str(caught.value) == f"{path}:4: extra: Extra inputs are not permitted"


def test_file_that_is_not_utf8_is_a_rules_file_error(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_bytes("queues: [{id: général}]\n".encode("latin-1"))
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    assert str(caught.value) == f"{path}:1: the rules file is not UTF-8 text"


def test_rules_from_settings_without_a_file_is_the_default_rules() -> None:
    rules = rules_from_settings(None)
    assert rules is DEFAULT_RULES
    assert [q.id for q in rules.queues] == ["general"]
    assert rules.default_queue == "general"
    assert rules.queue("general").business_hours is None


def test_rules_from_settings_with_a_file_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert rules_from_settings(path) == load_rules(path)


def test_rules_from_settings_with_a_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(RulesFileError, match="cannot read the rules file"):
        rules_from_settings(path)


# --- the JSON Schema -----------------------------------------------------------------------


def test_json_schema_is_json_with_its_id_and_title() -> None:
    text = rules_json_schema()
    schema = json.loads(text)
    assert text.endswith("}\n")
    assert schema["$id"] == "urn:omnirouter:routing-rules:v1"
    assert schema["title"] == "omnirouter routing rules"
    assert set(schema["properties"]) == set(RoutingRules.model_fields)
    assert schema["additionalProperties"] is False


def test_json_schema_describes_every_queue_property() -> None:
    queue = json.loads(rules_json_schema())["$defs"]["Queue"]
    assert set(queue["properties"]) == set(Queue.model_fields)
    assert queue["required"] == ["id"]
    assert queue["additionalProperties"] is False
