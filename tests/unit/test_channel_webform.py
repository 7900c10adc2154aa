"""Web forms: parsing every encoding, normalizing, and the origin allow-list (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.webform.normalize import (
    MAX_EXTRA_FIELDS,
    UnsupportedContentType,
    normalize_submission,
    parse_submission,
    submission_message_id,
)
from omnirouter.channels.webform.origin import origin_allowed
from omnirouter.events import Channel, IdentifierKind, InteractionKind
from omnirouter.ingress.publishing import provider_event_id

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

# --- parsing ------------------------------------------------------------------------------


def test_urlencoded_fields_keep_order_repeats_and_blanks() -> None:
    body = urlencode([("email", "a@x.io"), ("topic", "a"), ("topic", "b"), ("note", "")])
    fields = parse_submission(body.encode(), "application/x-www-form-urlencoded; charset=UTF-8")
    assert fields == [("email", "a@x.io"), ("topic", "a"), ("topic", "b"), ("note", "")]


def test_json_values_become_text_and_lists_become_repeats() -> None:
    body = b'{"email":"a@x.io","n":3,"ok":true,"none":null,"tags":["a","b"],"obj":{"k":"v"}}'
    assert parse_submission(body, "application/json") == [
        ("email", "a@x.io"),
        ("n", "3"),
        ("ok", "true"),
        ("none", ""),
        ("tags", "a"),
        ("tags", "b"),
        ("obj", '{"k":"v"}'),
    ]


def test_multipart_fields_are_read_and_files_only_named() -> None:
    request = httpx.Request(
        "POST",
        "https://cx.example.com/forms/x",
        data={"email": "a@x.io", "message": "Olá\r\nsegunda linha"},
        files={"photo": ("box.jpg", b"\xff\xd8\xff\xe0binary", "image/jpeg")},
    )
    fields = parse_submission(request.read(), request.headers["content-type"])
    assert fields == [
        ("email", "a@x.io"),
        ("message", "Olá\r\nsegunda linha"),
        ("photo", "box.jpg (10 bytes, file not kept)"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"email=a", "multipart/form-data"),
    ],
)
def test_a_body_that_does_not_parse_as_declared_is_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(NormalizationError):
        parse_submission(body, content_type)


@pytest.mark.parametrize("content_type", ["", "text/plain", "text/csv", "application/xml"])
def test_other_content_types_are_not_submissions(content_type: str) -> None:
    with pytest.raises(UnsupportedContentType):
        parse_submission(b"email=a@x.io", content_type)


# --- normalizing --------------------------------------------------------------------------


def test_a_submission_is_a_form_event_with_every_contact_given() -> None:
    fields = [
        ("name", " Ana Lima "),
        ("email", "ana@example.com"),
        ("phone", "+1 555 010 2345"),
        ("subject", "Refund"),
        ("message", "Where is my refund?\n"),
        ("order", "4711"),
        ("topic", "billing"),
        ("topic", "refunds"),
    ]
    event = normalize_submission("contact", fields, NOW)

    assert (event.channel, event.kind) == (Channel.WEBFORM, InteractionKind.FORM_SUBMISSION)
    assert [(i.kind, i.value) for i in event.identifiers] == [
        (IdentifierKind.EMAIL, "ana@example.com"),
        (IdentifierKind.PHONE, "+1 555 010 2345"),
    ]
    assert event.display_name == "Ana Lima"
    assert event.content.subject == "Refund"
    assert event.content.text == "Where is my refund?\n\norder: 4711\ntopic: billing, refunds"
    assert event.attributes == {}
    assert (event.provider.provider, event.provider.conversation_id) == ("webform", "contact")
    assert event.occurred_at == NOW


def test_a_phone_alone_is_enough() -> None:
    event = normalize_submission("callback", [("phone", "+447700900123")], NOW)
    assert [i.address for i in event.identifiers] == ["phone:+447700900123"]
    assert event.content.text == ""


@pytest.mark.parametrize(
    "fields", [[], [("name", "Ana"), ("message", "hi")], [("email", "  "), ("phone", "")]]
)
def test_without_email_or_phone_there_is_nobody_to_answer(fields: list[tuple[str, str]]) -> None:
    with pytest.raises(NormalizationError, match="without email or phone"):
        normalize_submission("contact", fields, NOW)


def test_extra_fields_past_the_limit_are_counted_not_listed() -> None:
    extra = [(f"f{i}", str(i)) for i in range(MAX_EXTRA_FIELDS + 7)]
    event = normalize_submission("big", [("email", "a@x.io"), *extra], NOW)

    lines = event.content.text.splitlines()
    assert len(lines) == MAX_EXTRA_FIELDS + 1
    assert lines[0] == "f0: 0"
    assert lines[-1] == "(7 more fields not shown)"


def test_a_submission_id_makes_resubmissions_one_event_per_form() -> None:
    fields = [("email", "a@x.io"), ("submission_id", "s-1")]
    first = normalize_submission("contact", fields, NOW)
    again = normalize_submission("contact", fields, NOW)
    other_form = normalize_submission("newsletter", fields, NOW)

    assert submission_message_id("contact", fields) == "contact:s-1"
    assert first.provider.message_id == "contact:s-1"
    assert first.event_id == again.event_id == provider_event_id("webform", "contact:s-1")
    assert other_form.event_id != first.event_id
    assert "submission_id" not in first.content.text


def test_without_submission_id_every_post_is_a_new_event() -> None:
    fields = [("email", "a@x.io")]
    first = normalize_submission("contact", fields, NOW)
    second = normalize_submission("contact", fields, NOW)
    assert first.provider.message_id is None
    assert isinstance(first.event_id, uuid.UUID)
    assert first.event_id != second.event_id


# --- origin allow-list --------------------------------------------------------------------


def test_an_empty_allow_list_allows_every_page() -> None:
    assert origin_allowed(None, None, ())
    assert origin_allowed("https://anywhere.test", None, ())


@pytest.mark.parametrize(
    ("origin", "referer", "allowed"),
    [
        ("https://shop.example.com", None, True),
        ("http://SHOP.example.com:8080", None, True),
        ("https://www.example.com", None, True),
        ("https://www.example.com:443", None, True),
        ("http://www.example.com", None, False),
        ("https://www.example.com:8443", None, False),
        ("https://evil.example.net", None, False),
        ("https://shop.example.com.evil.net", None, False),
        (None, "https://shop.example.com/contact?ref=1", True),
        ("null", "https://shop.example.com/contact", True),
        (None, "https://evil.example.net/shop.example.com", False),
        ("null", None, False),
        (None, None, False),
        ("not a url", None, False),
    ],
)
def test_pages_must_be_on_the_allow_list(
    origin: str | None, referer: str | None, allowed: bool
) -> None:
    entries = ("shop.example.com", "https://www.example.com/")
    assert origin_allowed(origin, referer, entries) is allowed
