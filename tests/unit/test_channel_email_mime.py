"""Raw e-mail to interaction event: bodies, charsets, headers, attachments, hostile input."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnirouter.channels.email import mime
from omnirouter.channels.email.mime import html_to_text, normalize_mime
from omnirouter.channels.errors import NormalizationError
from omnirouter.events import Channel, IdentifierKind, InteractionKind, encode
from omnirouter.ingress.publishing import provider_event_id

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def alternative_with_attachment() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ana Lima <Ana.Lima@Example.com>"
    message["To"] = "support@cx.example.com"
    message["Subject"] = "Order 1042 never arrived"
    message["Message-ID"] = "<order-1042@mail.example.com>"
    message["Date"] = "Mon, 02 Mar 2026 10:15:00 +0100"
    message.set_content("Hi,\nmy parcel never arrived.\n")
    message.add_alternative("<p>Hi,</p><p>my parcel <b>never</b> arrived.</p>", subtype="html")
    message.add_attachment(PNG, maintype="image", subtype="png", filename="label.png")
    return message


# --- bodies -------------------------------------------------------------------------------


def test_multipart_alternative_prefers_plain_text_and_keeps_the_html() -> None:
    event = normalize_mime(alternative_with_attachment().as_bytes(), NOW)

    assert event.content.text == "Hi,\nmy parcel never arrived."
    assert event.content.html is not None
    assert "<b>never</b>" in event.content.html
    assert event.content.subject == "Order 1042 never arrived"


def test_the_event_is_an_inbound_email_message_from_the_sender() -> None:
    event = normalize_mime(alternative_with_attachment().as_bytes(), NOW, provider="smtp")

    assert (event.channel, event.kind) == (Channel.EMAIL, InteractionKind.MESSAGE)
    [sender] = event.identifiers
    assert (sender.kind, sender.value) == (IdentifierKind.EMAIL, "Ana.Lima@Example.com")
    assert event.display_name == "Ana Lima"
    assert event.provider.provider == "smtp"
    assert event.event_id == provider_event_id("smtp", "<order-1042@mail.example.com>")
    assert event.occurred_at == datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    assert event.received_at == NOW


def test_an_html_only_body_gets_its_text_derived_without_tags_scripts_or_styles() -> None:
    raw = crlf(
        "From: a@example.com\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head><title>Mail</title><style>p {color: red}</style></head><body>"
        "<div>Hello&nbsp;team,</div><div><br></div><div>the app crashes &amp; logs out.</div>"
        "<script>alert('x')</script><p>Steps:</p><ol><li>open</li><li>tap pay</li></ol>"
        "<table><tr><td>Order</td><td>1042</td></tr></table></body></html>"
    )
    event = normalize_mime(raw, NOW)

    assert event.content.text == (
        "Hello team,\n\nthe app crashes & logs out.\n\nSteps:\n\nopen\ntap pay\n\nOrder 1042"
    )
    assert event.content.html is not None and "<script>" in event.content.html


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("plain words", "plain words"),
        ("a<br>b<br/><br>c", "a\nb\n\nc"),
        ("<p>one</p>\n\n   <p>two</p>", "one\n\ntwo"),
        ("<pre>  keep\n    indent</pre>", "keep\n    indent"),
        ("<div>unclosed <b>bold", "unclosed bold"),
        ("<style>never closed", ""),
        ("<script/>after", "after"),
        ("&lt;not a tag&gt; &#8364; &euro;", "<not a tag> € €"),
        ("<<<>>>", "<<<>>>"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_text_parts_around_an_inline_image_are_joined() -> None:
    raw = crlf(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=B\n\n"
        "--B\nContent-Type: text/plain\n\nbefore\n"
        "--B\nContent-Type: image/png\nContent-Disposition: inline\n"
        "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
        "--B\nContent-Type: text/plain\n\nafter\n--B--\n"
    )
    event = normalize_mime(raw, NOW)

    assert event.content.text == "before\nafter"
    assert [(a.content_type, a.size_bytes) for a in event.content.attachments] == [("image/png", 8)]


# --- character sets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "encoding", "body", "text"),
    [
        ("iso-8859-1", "quoted-printable", b"Ol=E1, n=E3o recebi", "Olá, não recebi"),
        # Labelled Latin-1 but written on Windows: curly quotes live in the C1 range.
        (
            "iso-8859-1",
            "quoted-printable",
            b"=93quoted=94 =96 fine",
            "\u201cquoted\u201d \u2013 fine",
        ),
        ("windows-1252", "8bit", b"caf\xe9 \x80 5", "café € 5"),
        ("utf-8", "base64", base64.b64encode("日本語 ✓".encode()), "日本語 ✓"),
        ("utf-8", "8bit", "naïve ☕".encode(), "naïve ☕"),
        ("us-ascii", "8bit", "déjà vu".encode(), "déjà vu"),  # mislabelled UTF-8
        ("x-unknown-charset", "8bit", "ok ünï".encode(), "ok ünï"),
        ("utf-8", "8bit", b"bad \xff\xfe bytes", "bad \ufffd\ufffd bytes"),
        ("gb2312", "base64", base64.b64encode("你好".encode("gb2312")), "你好"),
        ("utf-8", "base64", b"!!not base64 at all", None),  # garbage in, no crash out
    ],
)
def test_bodies_are_decoded_from_their_charset_and_transfer_encoding(
    charset: str, encoding: str, body: bytes, text: str | None
) -> None:
    head = (
        f"From: a@example.com\nContent-Type: text/plain; charset={charset}\n"
        f"Content-Transfer-Encoding: {encoding}\n\n"
    )
    event = normalize_mime(crlf(head) + body, NOW)

    if text is not None:
        assert event.content.text == text
    encode(event)  # and it goes on the wire


def test_rfc2047_encoded_subject_and_display_name_are_decoded() -> None:
    raw = crlf(
        "From: =?utf-8?q?Jos=C3=A9_Mu=C3=B1oz?= <jose@example.com>\n"
        "Subject: =?iso-8859-1?q?R=E9clamation?= =?utf-8?b?4oCUIGNvbW1hbmRl?= 77\n\nbody"
    )
    event = normalize_mime(raw, NOW)

    assert event.display_name == "José Muñoz"
    assert event.content.subject == "Réclamation— commande 77"


def test_raw_8bit_headers_are_decoded_not_carried_as_surrogates() -> None:
    raw = b"From: Jos\xc3\xa9 <jose@example.com>\r\nSubject: caf\xe9\r\n\r\nbody"
    event = normalize_mime(raw, NOW)

    assert event.display_name == "José"
    assert event.content.subject is not None and event.content.subject.startswith("caf")
    encode(event)


# --- attachments --------------------------------------------------------------------------


def test_attachments_are_metadata_with_their_decoded_size() -> None:
    event = normalize_mime(alternative_with_attachment().as_bytes(), NOW)

    [attachment] = event.content.attachments
    assert attachment.filename == "label.png"
    assert attachment.content_type == "image/png"
    assert attachment.size_bytes == len(PNG)
    assert "url" not in attachment.model_dump(exclude_none=True)


def test_nested_multiparts_with_inline_images_keep_body_and_content_ids() -> None:
    raw = crlf(
        "From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=M\n\n"
        "--M\nContent-Type: multipart/alternative; boundary=A\n\n"
        "--A\nContent-Type: text/plain; charset=utf-8\n\nSee the screenshot.\n"
        "--A\nContent-Type: multipart/related; boundary=R\n\n"
        '--R\nContent-Type: text/html; charset=utf-8\n\n<p>See <img src="cid:shot1@x"></p>\n'
        "--R\nContent-Type: image/png; name=shot.png\nContent-ID: <shot1@x>\n"
        "Content-Disposition: inline; filename=shot.png\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(PNG).decode()}\n--R--\n--A--\n"
        "--M\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
        "--M\nContent-Type: text/plain; name=notes.txt\n"
        "Content-Disposition: attachment; filename=notes.txt\n\nnot the body\n--M--\n"
    )
    event = normalize_mime(raw, NOW)

    assert event.content.text == "See the screenshot."
    assert event.content.html is not None and "cid:shot1@x" in event.content.html
    assert [
        (a.filename, a.content_type, a.size_bytes, a.content_id) for a in event.content.attachments
    ] == [
        ("shot.png", "image/png", len(PNG), "shot1@x"),
        ("résumé.pdf", "application/pdf", 9, None),
        ("notes.txt", "text/plain", len("not the body"), None),
    ]


def test_a_forwarded_message_is_an_attachment_not_the_body() -> None:
    raw = crlf(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=M\n\n"
        "--M\nContent-Type: text/plain\n\nFYI below\n"
        "--M\nContent-Type: message/rfc822\n\nFrom: other@example.org\nSubject: old\n\nold body\n"
        "--M--\n"
    )
    event = normalize_mime(raw, NOW)

    assert event.content.text == "FYI below"
    [forwarded] = event.content.attachments
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.size_bytes > 0


def test_attachment_metadata_is_bounded() -> None:
    parts = "".join(
        f"--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment;"
        f" filename=f{i}.bin\n\nx\n"
        for i in range(mime.MAX_ATTACHMENTS + 20)
    )
    raw = crlf(f"From: a@example.com\nContent-Type: multipart/mixed; boundary=B\n\n{parts}--B--\n")

    assert len(normalize_mime(raw, NOW).content.attachments) == mime.MAX_ATTACHMENTS


# --- headers ------------------------------------------------------------------------------


def test_threading_headers_are_kept() -> None:
    raw = crlf(
        "From: a@example.com\nMessage-ID: <reply-2@mail.example.com>\n"
        "In-Reply-To: <ticket-1@cx.example.com> (Ana's message)\n"
        "References: <root@mail.example.com>\n <ticket-1@cx.example.com>\n\nthanks"
    )
    refs = normalize_mime(raw, NOW).provider

    assert refs.message_id == "<reply-2@mail.example.com>"
    assert refs.in_reply_to == "<ticket-1@cx.example.com>"
    assert refs.references == ("<root@mail.example.com>", "<ticket-1@cx.example.com>")


def test_a_long_references_chain_keeps_its_root_and_latest_ids() -> None:
    ids = [f"<m{i}@x>" for i in range(200)]
    raw = crlf(f"From: a@example.com\nReferences: {' '.join(ids)}\n\nx")
    references = normalize_mime(raw, NOW).provider.references

    assert len(references) == mime.MAX_REFERENCES
    assert references[0] == "<m0@x>" and references[-1] == "<m199@x>"


@pytest.mark.parametrize(
    ("date", "occurred_at"),
    [
        ("Mon, 02 Mar 2026 04:15:00 -0500", datetime(2026, 3, 2, 9, 15, tzinfo=UTC)),
        ("Mon, 02 Mar 2026 09:15:00 -0000", datetime(2026, 3, 2, 9, 15, tzinfo=UTC)),
        ("yesterday-ish", NOW),
        ("Fri, 01 Jan 2100 00:00:00 +0000", NOW),  # a sender clock far ahead is not trusted
        (None, NOW),
    ],
)
def test_occurred_at_is_the_date_header_or_the_received_time(
    date: str | None, occurred_at: datetime
) -> None:
    head = "From: a@example.com\n" + (f"Date: {date}\n" if date else "")
    assert normalize_mime(crlf(head + "\nx"), NOW).occurred_at == occurred_at


def test_without_a_message_id_the_event_id_is_still_the_same_for_the_same_bytes() -> None:
    raw = crlf("From: a@example.com\nSubject: hi\n\nx")

    first, again = normalize_mime(raw, NOW), normalize_mime(raw, NOW + timedelta(minutes=5))
    other = normalize_mime(raw + b"y", NOW)

    assert first.provider.message_id is None
    assert first.event_id == again.event_id != other.event_id


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: no sender\r\n\r\nbody",
        b"From: \r\n\r\nbody",
        b"From: undisclosed-recipients:;\r\n\r\nbody",
        b"From: <>\r\n\r\nbody",
        b"From: a@\r\n\r\nbody",  # crashes CPython's address parser (IndexError)
        b'From: "unterminated <a@b>\r\n\r\nbody',
        b"",
    ],
)
def test_a_message_without_a_usable_from_address_is_a_normalization_error(raw: bytes) -> None:
    with pytest.raises(NormalizationError, match="From"):
        normalize_mime(raw, NOW)


def test_an_absurdly_long_address_is_a_normalization_error_not_a_crash() -> None:
    raw = crlf(f"From: {'a' * 20_000}@example.com\n\nx")
    with pytest.raises(NormalizationError):
        normalize_mime(raw, NOW)


def test_huge_bodies_are_truncated_to_fit_one_kafka_record() -> None:
    text = "ü" * 600_000
    raw = crlf("From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\n") + text.encode()
    event = normalize_mime(raw, NOW)

    assert len(event.content.text.encode()) <= mime.MAX_TEXT_BYTES
    assert len(encode(event)) < 1_000_000


# --- hostile input ------------------------------------------------------------------------

_SEED = alternative_with_attachment().as_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_make_an_event_or_a_normalization_error(raw: bytes) -> None:
    with contextlib.suppress(NormalizationError):
        encode(normalize_mime(b"From: a@example.com\r\n" + raw, NOW))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 40), st.binary(max_size=12)),
        max_size=6,
    )
)
def test_a_corrupted_real_message_makes_an_event_or_a_normalization_error(
    edits: list[tuple[int, int, bytes]],
) -> None:
    raw = _SEED
    for at, cut, insert in edits:
        raw = raw[:at] + insert + raw[at + cut :]
    with contextlib.suppress(NormalizationError):
        encode(normalize_mime(raw, NOW))


def test_absurd_nesting_is_refused_or_flattened_without_crashing() -> None:
    depth = 400
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    raw = crlf("From: a@example.com\n" + head + "Content-Type: text/plain\n\ndeep\n")
    with contextlib.suppress(NormalizationError):
        encode(normalize_mime(raw, NOW))
