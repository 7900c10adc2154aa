"""Intent tags from configurable keyword and regex rules: deterministic and explainable (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


def _any_keyword(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    # Found somewhere iff one of the keywords is (the alternation backtracks through them all).
    if not keywords:
        return None
    alternatives = "|".join(re.escape(k) for k in keywords)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """One rule set's keywords compiled together, so a message that names none of a rule's
    keywords costs one search, not one per keyword (every message goes through this)."""

    rules: tuple[IntentRule, ...]
    any_keyword: re.Pattern[str] | None
    rule_keyword: tuple[re.Pattern[str] | None, ...]
    # Each rule's keywords in lower case when all are ASCII (else None): in ASCII text such a
    # keyword can only match where its lower case is a substring of the lowered text.
    rule_lowered: tuple[tuple[str, ...] | None, ...]


# By identity: the rules come from settings, the same tuple on every call, and hashing the
# rule models per message would cost more than it saves. An entry holds its tuple, so its id
# cannot be reused while cached.
_matchers: dict[int, _Matcher] = {}


def _matcher(rules: tuple[IntentRule, ...]) -> _Matcher:
    cached = _matchers.get(id(rules))
    if cached is not None and cached.rules is rules:
        return cached
    if len(_matchers) >= 64:
        _matchers.clear()
    matcher = _Matcher(
        rules,
        _any_keyword(tuple(k for rule in rules for k in rule.keywords)),
        tuple(_any_keyword(rule.keywords) for rule in rules),
        tuple(
            tuple(k.lower() for k in rule.keywords)
            if all(k.isascii() for k in rule.keywords)
            else None
            for rule in rules
        ),
    )
    _matchers[id(rules)] = matcher
    return matcher


def tag_intents(text: str, rules: tuple[IntentRule, ...]) -> tuple[IntentTag, ...]:
    """The intents ``text`` shows, one per tag, each with the rule and words that matched."""
    matcher = _matcher(rules)
    ascii_text = text.isascii()
    lowered = text.lower() if ascii_text else ""
    some_keyword: object = None  # searched for only when a rule needs it
    found: dict[str, IntentTag] = {}
    for rule, rule_keyword, rule_lowered in zip(
        rules, matcher.rule_keyword, matcher.rule_lowered, strict=True
    ):
        if rule.tag in found:
            continue
        if ascii_text and rule_lowered is not None:
            # Substring tests first (cheap); the regex only for keywords that can match.
            keywords = [
                k for k, low in zip(rule.keywords, rule_lowered, strict=True) if low in lowered
            ]
        else:
            if some_keyword is None:
                some_keyword = bool(matcher.any_keyword and matcher.any_keyword.search(text))
            hit = some_keyword and rule_keyword is not None and rule_keyword.search(text)
            keywords = list(rule.keywords) if hit else []
        # Evidence is the first of the rule's keywords (in its order) that the text shows.
        tag = _first_keyword(rule, keywords, text)
        if tag is None:
            tag = _first_pattern(rule, text)
        if tag is not None:
            found[rule.tag] = tag
    return tuple(found.values())


def _first_keyword(rule: IntentRule, keywords: list[str], text: str) -> IntentTag | None:
    for keyword in keywords:
        match = _keyword_pattern(keyword).search(text)
        if match:
            return IntentTag(tag=rule.tag, rule_id=rule.rule_id, evidence=match.group(0))
    return None


def _first_pattern(rule: IntentRule, text: str) -> IntentTag | None:
    for pattern in rule.patterns:
        match = _regex(pattern).search(text)
        if match:
            return IntentTag(tag=rule.tag, rule_id=rule.rule_id, evidence=match.group(0)[:200])
    return None
