"""Intent tags from configurable keyword and regex rules: deterministic and explainable (pure)."""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnirouter.events import IntentTag


class IntentRule(BaseModel):
    """Tag a message with ``tag`` when any keyword (whole words) or pattern matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    tag: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
        return patterns


DEFAULT_INTENT_RULES: tuple[IntentRule, ...] = (
    IntentRule(rule_id="billing", tag="billing",
               keywords=("invoice", "bill", "charged", "charge", "payment", "overcharged")),
    IntentRule(rule_id="refund", tag="refund", keywords=("refund", "money back", "reimburse")),
    IntentRule(rule_id="delivery", tag="delivery",
               keywords=("parcel", "package", "delivery", "shipment", "tracking", "courier"),
               patterns=(r"\bnever (arrived|came)\b", r"\bnot (arrived|delivered)\b")),
    IntentRule(rule_id="cancel", tag="cancellation",
               keywords=("cancel", "cancellation", "unsubscribe", "terminate")),
    IntentRule(rule_id="access", tag="account_access",
               keywords=("password", "log in", "login", "locked out", "2fa", "reset")),
    IntentRule(rule_id="complaint", tag="complaint",
               keywords=("complaint", "unacceptable", "terrible", "disappointed", "third time"),
               patterns=(r"\b(again|still) (no|not|nothing)\b",)),
)  # fmt: skip


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def tag_intents(text: str, rules: tuple[IntentRule, ...]) -> tuple[IntentTag, ...]:
    """The intents ``text`` shows, one per tag, each with the rule and words that matched."""
    found: dict[str, IntentTag] = {}
    for rule in rules:
        if rule.tag in found:
            continue
        for keyword in rule.keywords:
            match = _keyword_pattern(keyword).search(text)
            if match:
                found[rule.tag] = IntentTag(
                    tag=rule.tag, rule_id=rule.rule_id, evidence=match.group(0)
                )
                break
        else:
            for pattern in rule.patterns:
                match = _regex(pattern).search(text)
                if match:
                    found[rule.tag] = IntentTag(
                        tag=rule.tag, rule_id=rule.rule_id, evidence=match.group(0)[:200]
                    )
                    break
    return tuple(found.values())
