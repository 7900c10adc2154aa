"""The log mask: no phone number, e-mail address or message text survives it; ids do."""

from __future__ import annotations

import json
import uuid
from typing import Any

import phonenumbers
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from omnirouter.events import Content
from omnirouter.logmask import mask_event_dict, mask_text
from support.events import identifier, inbound

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _example_numbers() -> list[str]:
    """Every region's example numbers, in E.164, international and national spelling."""
    spelled = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number(region)
        if number is None:
            continue
        for fmt in (
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        ):
            text = phonenumbers.format_number(number, fmt)
            # National numbers of fewer than 8 digits are not told apart from other numbers
            # (a port, a count); international spellings carry their "+" and always are.
            if text.startswith("+") or sum(c.isdigit() for c in text) >= 8:
                spelled.append(text)
    return spelled


EXAMPLE_NUMBERS = _example_numbers()


@st.composite
def phones(draw: st.DrawFn) -> str:
    """Phone numbers as people and providers write them."""
    kind = draw(st.sampled_from(["example", "e164", "us"]))
    if kind == "example":
        return draw(st.sampled_from(EXAMPLE_NUMBERS))
    if kind == "e164":
        return "+" + draw(st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True))
    area, exchange, line = (
        draw(st.from_regex(r"[2-9][0-9]{2}", fullmatch=True)),
        draw(st.from_regex(r"[0-9]{3}", fullmatch=True)),
        draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
    )
    pattern = draw(
        st.sampled_from(
            ["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "1{a}{e}{l}", "+1 {a} {e} {l}"]
        )
    )
    return pattern.format(a=area, e=exchange, l=line)


# What stands between a phone number and the words around it in a sentence.
separators = st.sampled_from([" ", "\n", "\t", ", ", ": ", "=", "(", ")", "<", ">", '"', "'", "/"])


def _readable_emails() -> st.SearchStrategy[str]:
    # A local part of one character, or one ending in "*", cannot be told from its own mask
    # ("a***@…" keeps the first character): those are left out.
    return st.emails().filter(lambda e: not e.partition("@")[0].endswith("*"))


@PROPERTY
@given(prefix=st.text(max_size=30), email=_readable_emails(), suffix=st.text(max_size=30))
@example(prefix="", email="dee@example.com", suffix="")
def test_an_email_address_anywhere_in_a_string_never_survives(
    prefix: str, email: str, suffix: str
) -> None:
    masked = mask_text(prefix + email + suffix)
    assert email not in masked
    assert email.lower() not in masked.lower()


@PROPERTY
@given(
    prefix=st.text(max_size=30),
    before=separators,
    phone=phones(),
    after=separators,
    suffix=st.text(max_size=30),
)
@example(prefix="call me on", before=" ", phone="+1 (555) 010-2345", after=" ", suffix="pls")
def test_a_phone_number_anywhere_in_a_string_never_survives(
    prefix: str, before: str, phone: str, after: str, suffix: str
) -> None:
    masked = mask_text(prefix + before + phone + after + suffix)
    assert phone not in masked
    digits = "".join(c for c in phone if c.isdigit())
    assume(digits not in prefix + suffix)
    assert digits not in "".join(c for c in masked if c.isdigit())


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@PROPERTY
@given(
    data=st.recursive(
        json_leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    path=st.lists(st.sampled_from(["details", "items", "raw"]), max_size=4),
    secret=st.one_of(phones(), _readable_emails()),
)
def test_personal_data_nested_at_any_depth_is_masked(
    data: Any, path: list[str], secret: str
) -> None:
    nested: Any = {"noise": data, "leaf": f"from {secret} at noon"}
    for key in path:
        nested = {key: [nested, data]}
    masked = mask_event_dict({"event": "record rejected", "record": nested})
    assert secret not in json.dumps(masked, ensure_ascii=False)


def test_message_text_fields_are_replaced_by_their_length() -> None:
    masked = mask_event_dict(
        {
            "event": "inbound message",
            "text": "my card 4111 is stolen",
            "subject": "Help",
            "reply_text": "we are on it",
            "content": {"text": "hello", "html": "<p>hello</p>", "language": "en"},
            "fragments": ["first words", "second words"],
        }
    )
    assert masked["text"] == "[redacted 22 chars]"
    assert masked["subject"] == "[redacted 4 chars]"
    assert masked["reply_text"] == "[redacted 12 chars]"
    assert masked["content"] == {
        "text": "[redacted 5 chars]",
        "html": "[redacted 12 chars]",
        "language": "en",
    }
    assert masked["fragments"] == ["[redacted 11 chars]", "[redacted 12 chars]"]
    assert masked["event"] == "inbound message"


def test_ids_timestamps_and_addresses_stay_readable() -> None:
    event_id = str(uuid.UUID("12345678-1234-1234-1234-123456789012"))
    fields = {
        "event": f"resolved {event_id} to cus_555010234512345678901234",
        "event_id": event_id,
        "customer_id": "cus_1555010234500000000000ab",
        "case_id": "case_5550102345000000.cus_1555010234500000000000ab",
        "review_id": "rev_0123456789abcdef01234567",
        "at": "2026-11-24T09:30:00.123456+00:00",
        "broker": "10.100.200.150:9092",
        "attempt": 15550102345,  # numbers are not strings a person typed: kept
    }
    assert mask_event_dict(fields) == fields


def test_identifiers_keep_their_kind_and_emails_their_domain() -> None:
    masked = mask_event_dict(
        {
            "event": "merged",
            "moved": ["phone:+15550102345", "email:dee.dee@example.com"],
            "by_address": {"email:dee@example.com": "cus_1"},
        }
    )
    assert masked["moved"] == ["phone:[phone]", "email:d***@example.com"]
    assert masked["by_address"] == {"email:d***@example.com": "cus_1"}


def test_a_logged_event_model_is_masked_field_by_field() -> None:
    event = inbound(
        "sms", identifier("phone", "+15550102345"), text="please call me back"
    ).model_copy(update={"content": Content(text="please call me back", subject="Refund")})
    masked = mask_event_dict({"event": "bad event", "payload": event})
    rendered = json.dumps(masked)
    assert "+15550102345" not in rendered
    assert "call me back" not in rendered
    assert masked["payload"]["content"]["text"] == "[redacted 19 chars]"
    assert masked["payload"]["event_id"] == str(event.event_id)
