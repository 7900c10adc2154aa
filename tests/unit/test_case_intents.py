"""Intent tags: configured keyword and regex rules, deterministic and explainable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from omnirouter.events import IntentTag
from omnirouter.pipeline.cases.intents import DEFAULT_INTENT_RULES, IntentRule, tag_intents


def _tags(text: str, rules: tuple[IntentRule, ...] = DEFAULT_INTENT_RULES) -> list[str]:
    return [t.tag for t in tag_intents(text, rules)]


# --- the default rules ---------------------------------------------------------------------


def test_default_rules_tag_a_missing_parcel_as_delivery_with_the_word_that_matched() -> None:
    assert tag_intents("My parcel never arrived", DEFAULT_INTENT_RULES) == (
        IntentTag(tag="delivery", rule_id="delivery", evidence="parcel"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I was charged twice", ["billing"]),
        ("Please give me my money back", ["refund"]),
        ("I want to unsubscribe", ["cancellation"]),
        ("I am locked out of my account", ["account_access"]),
        ("This is the third time I write", ["complaint"]),
        ("I was overcharged, I want a refund", ["billing", "refund"]),
        ("Good morning, how are you?", []),
    ],
)
def test_default_rules_tag_each_intent_the_text_shows_in_rule_order(
    text: str, expected: list[str]
) -> None:
    assert _tags(text) == expected


# --- keywords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "We played billiards all night",  # "bill"
        "The price was surcharged",  # "charge", "charged"
        "It came prepackaged",  # "package"
        "The preset was wrong",  # "reset"
        "Two parcels and packages",  # plural is another word
    ],
)
def test_keywords_match_whole_words_only(text: str) -> None:
    assert _tags(text) == []


@pytest.mark.parametrize(
    "text", ["Where is my PARCEL?", "where is my Parcel", "(parcel)", "parcel.", "parcel"]
)
def test_keywords_match_case_insensitively_and_next_to_punctuation(text: str) -> None:
    (tag,) = tag_intents(text, DEFAULT_INTENT_RULES)
    assert tag.tag == "delivery"
    assert tag.evidence.lower() == "parcel"


def test_evidence_is_the_text_as_written_not_the_keyword() -> None:
    (tag,) = tag_intents("The COURIER lost it", DEFAULT_INTENT_RULES)
    assert tag.evidence == "COURIER"


def test_multi_word_keyword_matches_the_phrase() -> None:
    (tag,) = tag_intents("I cannot log in since Monday", DEFAULT_INTENT_RULES)
    assert (tag.tag, tag.evidence) == ("account_access", "log in")


def test_several_matching_keywords_give_one_tag_with_the_first_keyword_of_the_rule() -> None:
    tags = tag_intents("payment for the invoice, the bill and the charge", DEFAULT_INTENT_RULES)
    assert tags == (IntentTag(tag="billing", rule_id="billing", evidence="invoice"),)


# --- rules sharing a tag -------------------------------------------------------------------


def test_first_matching_rule_in_order_names_the_tag() -> None:
    rules = (
        IntentRule(rule_id="late-a", tag="late", keywords=("late",)),
        IntentRule(rule_id="late-b", tag="late", keywords=("late", "delayed")),
    )
    assert tag_intents("delayed and late", rules) == (
        IntentTag(tag="late", rule_id="late-a", evidence="late"),
    )
    assert tag_intents("delayed", rules) == (
        IntentTag(tag="late", rule_id="late-b", evidence="delayed"),
    )
    assert tag_intents("delayed and late", tuple(reversed(rules))) == (
        IntentTag(tag="late", rule_id="late-b", evidence="late"),
    )


# --- patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("It never arrived", "never arrived"),
        ("it NEVER CAME at all", "NEVER CAME"),
        ("my order was not delivered", "not delivered"),
    ],
)
def test_patterns_tag_when_no_keyword_matched(text: str, evidence: str) -> None:
    assert tag_intents(text, DEFAULT_INTENT_RULES) == (
        IntentTag(tag="delivery", rule_id="delivery", evidence=evidence),
    )


def test_a_matching_keyword_is_the_evidence_even_when_a_pattern_also_matches() -> None:
    (tag,) = tag_intents("The shipment never arrived", DEFAULT_INTENT_RULES)
    assert tag.evidence == "shipment"


def test_pattern_evidence_is_cut_to_200_characters() -> None:
    rules = (IntentRule(rule_id="shout", tag="shouting", patterns=(r"a+",)),)
    (tag,) = tag_intents("b" + "a" * 500, rules)
    assert tag.evidence == "a" * 200


# --- rule validation -----------------------------------------------------------------------


def test_rule_with_an_invalid_regex_is_rejected_when_built() -> None:
    with pytest.raises(ValidationError, match="bad pattern"):
        IntentRule(rule_id="broken", tag="broken", patterns=(r"never (arrived",))


def test_rule_with_an_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        IntentRule.model_validate({"rule_id": "r", "tag": "t", "keyword": ["x"]})


@pytest.mark.parametrize("bad", ["", "Billing", "has space", "-leading-dash", "x" * 65])
def test_rule_id_and_tag_must_be_short_lower_case_slugs(bad: str) -> None:
    with pytest.raises(ValidationError):
        IntentRule(rule_id=bad, tag="ok")
    with pytest.raises(ValidationError):
        IntentRule(rule_id="ok", tag=bad)


def test_keywords_are_literal_text_not_regex() -> None:
    rules = (IntentRule(rule_id="plus", tag="plus", keywords=("c++",)),)
    assert _tags("I code in c++ daily", rules) == ["plus"]
    assert _tags("I code in cc daily", rules) == []


# --- edge cases ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_empty_text_has_no_intents(text: str) -> None:
    assert tag_intents(text, DEFAULT_INTENT_RULES) == ()


def test_no_rules_means_no_intents() -> None:
    assert tag_intents("My parcel never arrived and I want a refund", ()) == ()


def test_same_text_gives_the_same_tags_every_time() -> None:
    text = "Third time asking: the parcel never arrived, refund my payment or I cancel"
    first = tag_intents(text, DEFAULT_INTENT_RULES)
    assert [tag_intents(text, DEFAULT_INTENT_RULES) for _ in range(3)] == [first] * 3
    assert [t.tag for t in first] == ["billing", "refund", "delivery", "cancellation", "complaint"]
