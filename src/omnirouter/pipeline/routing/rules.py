"""The routing rules file: queues, strategies and matching rules, validated as one model.

Its JSON Schema is published in ``schemas/routing-rules.schema.json``.
"""

from __future__ import annotations

import json
import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omnirouter.events import Channel
from omnirouter.pipeline.routing.hours import BusinessHours

_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"

DEFAULT_CAPACITY: dict[Channel, int] = {
    # How many cases of a channel one agent handles at once: a call takes all of them.
    Channel.VOICE: 1,
    Channel.WEBCHAT: 3,
    Channel.WHATSAPP: 3,
    Channel.SMS: 5,
    Channel.EMAIL: 5,
    Channel.WEBFORM: 5,
    Channel.API: 5,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sla(_Model):
    """Service-level targets, from the customer's first message and from each later one."""

    first_response_s: int = Field(default=3600, ge=1)
    next_response_s: int = Field(default=3600, ge=1)


class Sticky(_Model):
    """Offer the case to the agent who last helped the customer, for a while, then anyone."""

    enabled: bool = False
    wait_s: int = Field(default=60, ge=0, le=86_400)


class Widen(_Model):
    """How an escalation step relaxes who may take the case."""

    drop_skills: bool = False
    min_proficiency: int | None = Field(default=None, ge=1, le=5)
    any_language: bool = False


class EscalationStep(_Model):
    """After ``after_s`` waiting, widen the target, move it to another queue, or boost it."""

    after_s: int = Field(ge=1)
    widen: Widen | None = None
    move_to: str | None = Field(default=None, pattern=_ID)
    priority_boost: int = Field(default=0, ge=0, le=100)


class AutoAck(_Model):
    """Tell a queued customer they were heard and when to expect an answer.

    Templates may use ``{name}``, ``{wait}`` (e.g. "about 10 minutes") and ``{queue}``.
    """

    enabled: bool = False
    default_language: str = "en"
    templates: dict[str, str] = Field(
        default_factory=lambda: {
            "en": "Hi {name}, thanks for your message. We'll reply in {wait}.",
        }
    )

    @model_validator(mode="after")
    def _default_template(self) -> Self:
        if self.enabled and self.default_language not in self.templates:
            raise ValueError(f"no template for default_language {self.default_language!r}")
        return self


class Queue(_Model):
    """Where cases wait for agents with the skills and languages they need."""

    id: str = Field(pattern=_ID)
    name: str = ""
    skills: dict[str, int] = Field(
        default_factory=dict, description="Required skill -> minimum proficiency (1-5)."
    )
    languages: tuple[str, ...] = Field(
        default=(),
        description="Languages served; a case in another language waits here only if empty.",
    )
    base_priority: int = Field(default=0, ge=0, le=100)
    business_hours: BusinessHours | None = Field(default=None, description="None: always open.")
    when_closed: Literal["queue", "overflow"] = "queue"
    overflow_to: str | None = Field(default=None, pattern=_ID)
    sla: Sla = Field(default_factory=Sla)
    distribution: Literal["most_spare_capacity", "longest_idle"] = "most_spare_capacity"
    sticky: Sticky = Field(default_factory=Sticky)
    escalation: tuple[EscalationStep, ...] = ()
    offer_timeout_s: int = Field(default=30, ge=1, le=3600)
    auto_ack: AutoAck = Field(default_factory=AutoAck)

    @field_validator("skills")
    @classmethod
    def _proficiency(cls, value: dict[str, int]) -> dict[str, int]:
        for skill, level in value.items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill!r}: proficiency must be 1-5, not {level}")
        return value

    @model_validator(mode="after")
    def _overflow_named(self) -> Self:
        if self.when_closed == "overflow" and self.overflow_to is None:
            raise ValueError("when_closed: overflow needs overflow_to")
        steps = [s.after_s for s in self.escalation]
        if steps != sorted(steps):
            raise ValueError("escalation steps must be in increasing after_s order")
        return self


class Match(_Model):
    """Conditions a case must meet, all of them; an empty match matches every case."""

    channels: tuple[Channel, ...] = ()
    intents: tuple[str, ...] = Field(default=(), description="Any of these intent tags.")
    tiers: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    repeat_contact: bool | None = None
    text_regex: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("text_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from None
        return value


class Rule(_Model):
    """The first rule whose ``when`` matches decides the queue."""

    id: str = Field(pattern=_ID)
    when: Match = Field(default_factory=Match)
    route_to: str = Field(pattern=_ID)
    priority_boost: int = Field(default=0, ge=-100, le=100)


class Boosts(_Model):
    """Priority added on top of the queue's base and the rule's boost."""

    vip_tiers: tuple[str, ...] = ("vip",)
    vip: int = Field(default=20, ge=0, le=100)
    repeat_contact: int = Field(default=10, ge=0, le=100)
    per_minute_waiting: float = Field(default=1.0, ge=0, le=100)
    over_sla: int = Field(default=30, ge=0, le=100)


class RoutingRules(_Model):
    """A whole rules file."""

    version: Literal[1] = 1
    capacity: dict[Channel, int] = Field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    queues: tuple[Queue, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()
    default_queue: str = Field(pattern=_ID)
    boosts: Boosts = Field(default_factory=Boosts)

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        # Each message starts with the dotted path of the offending value ("rules.0.route_to:
        # …") so the file loader can point at its line.
        ids = [q.id for q in self.queues]
        for index, queue_id in enumerate(ids):
            if queue_id in ids[:index]:
                raise ValueError(f"queues.{index}.id: queue id {queue_id!r} is used twice")
        known = set(ids)
        if self.default_queue not in known:
            raise ValueError(f"default_queue: {self.default_queue!r} is not a queue")
        rule_ids = [r.id for r in self.rules]
        for index, rule in enumerate(self.rules):
            if rule.id in rule_ids[:index]:
                raise ValueError(f"rules.{index}.id: rule id {rule.id!r} is used twice")
            if rule.route_to not in known:
                raise ValueError(
                    f"rules.{index}.route_to: rule {rule.id!r} routes to unknown queue "
                    f"{rule.route_to!r}"
                )
        for index, queue in enumerate(self.queues):
            if queue.overflow_to is not None and queue.overflow_to not in known:
                raise ValueError(
                    f"queues.{index}.overflow_to: queue {queue.id!r} overflows to unknown queue "
                    f"{queue.overflow_to!r}"
                )
            for step_index, step in enumerate(queue.escalation):
                if step.move_to is not None and step.move_to not in known:
                    raise ValueError(
                        f"queues.{index}.escalation.{step_index}.move_to: queue {queue.id!r} "
                        f"escalates to unknown queue {step.move_to!r}"
                    )
        return self

    def queue(self, queue_id: str) -> Queue:
        """The queue called ``queue_id``."""
        for queue in self.queues:
            if queue.id == queue_id:
                return queue
        raise KeyError(queue_id)

    def capacity_for(self, channel: Channel, overrides: dict[str, int] | None = None) -> int:
        """How many cases of ``channel`` one agent may hold (agent overrides first)."""
        if overrides and str(channel) in overrides:
            return overrides[str(channel)]
        return self.capacity.get(channel, 1)


DEFAULT_RULES = RoutingRules(
    queues=(Queue(id="general", name="General"),),
    default_queue="general",
)
"""One always-open queue every agent serves: what runs when no rules file is given."""


RULES_SCHEMA_PATH = "routing-rules.schema.json"


def rules_json_schema() -> str:
    """The JSON Schema of a rules file, as committed in ``schemas/``."""
    schema = RoutingRules.model_json_schema()
    schema["$id"] = "urn:omnirouter:routing-rules:v1"
    schema["title"] = "omnirouter routing rules"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
