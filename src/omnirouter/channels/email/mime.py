"""Raw RFC 5322 messages as interaction events (pure).

Every inbound e-mail path ends here: the SMTP listener and SendGrid's raw mode hand over the
whole message; SendGrid's parsed mode and Mailgun reuse the header, address and HTML helpers.
Mail is hostile input: nothing in this module raises anything but ``NormalizationError``.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import AddressHeader
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from pydantic import ValidationError

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
    DEFAULT_TENANT,
    Attachment,
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
)
from omnirouter.ingress.publishing import provider_event_id

PROVIDER = "email"

# Kafka refuses records over ~1 MiB (the producer's and broker's default). A record that can
# never be written would be answered 503 forever, so the parts that scale with the message are
# bounded: JSON escaping at most doubles the text, which keeps the event well under the limit.
MAX_TEXT_BYTES = 150_000
MAX_HTML_BYTES = 250_000
MAX_ATTACHMENTS = 100
MAX_REFERENCES = 50
_MAX_SHORT = 998  # RFC 5322's line length: plenty for a subject, a name or a file name
_MAX_DEPTH = 32
# A Date header this far ahead of our clock is wrong; it would sort the message above every
# later one in the customer's timeline.
_MAX_CLOCK_SKEW = timedelta(days=1)

Headers = Sequence[tuple[str, str]]
"""Header (name, raw value) pairs in message order, as ``Message.raw_items()`` gives them."""

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n[ \t]*")
# C0 controls other than tab and line feed, and DEL: never meaningful in text, and JSON
# escapes each into six bytes.
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


@dataclass(frozen=True, slots=True)
class Sender:
    """The From mailbox: the address as given and the decoded display name."""

    address: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class Threading:
    """The ids a reply is matched by (kept verbatim, angle brackets included)."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EmailParts:
    """What every inbound e-mail path extracts before it becomes an event."""

    sender: Sender
    subject: str | None
    text: str
    html: str | None
    threading: Threading
    sent_at: datetime | None
    attachments: tuple[Attachment, ...] = field(default=())


# --- text hygiene -------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """``value`` safe for the wire: raw 8-bit runs decoded, no lone surrogates or controls."""
    if _SURROGATE.search(value):
        # The parser keeps undeclared 8-bit bytes as escaped surrogates; decode each run.
        value = _ESCAPED_BYTES.sub(lambda m: _bytes_as_text(_unescape(m.group())), value)
        value = _SURROGATE.sub("\ufffd", value)
    return value.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROLS)


def _unescape(run: str) -> bytes:
    return bytes(ord(char) - 0xDC00 for char in run)


def _bytes_as_text(data: bytes) -> str:
    # Undeclared 8-bit text is UTF-8 when it decodes as such, else almost always Windows-1252.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def one_line(value: str | None) -> str | None:
    """``value`` cleaned, on one line and bounded (subjects, names, file names)."""
    if value is None:
        return None
    value = " ".join(clean_text(value).split())[:_MAX_SHORT]
    return value or None


def truncate_utf8(value: str, max_bytes: int) -> str:
    """``value`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    encoded = value.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return value
    return encoded[:max_bytes].decode("utf-8", "ignore")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in the declared ``charset``; undecodable bytes become U+FFFD, never an error."""
    codec = _codec(charset)
    if codec is None:
        text = _bytes_as_text(data)
    else:
        try:
            text = data.decode(codec, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            text = _bytes_as_text(data)
    return clean_text(text.removeprefix("\ufeff"))


def _codec(charset: str | None) -> str | None:
    """The codec to decode with; None when the label says nothing useful (absent, ASCII)."""
    if not charset:
        return None
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name
    except (LookupError, ValueError, UnicodeError):
        return None
    if name == "ascii":
        return None
    # As browsers do (WHATWG Encoding): mail labelled Latin-1 is written by Windows clients,
    # whose curly quotes and dashes sit where Latin-1 has C1 controls.
    if name == "iso8859-1":
        return "cp1252"
    if name in ("gb2312", "gbk"):
        return "gb18030"
    return name


# --- headers ------------------------------------------------------------------------------


def header(headers: Headers, name: str) -> str | None:
    """The first raw value of header ``name`` (case-insensitive), unfolded."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return _FOLD.sub(" ", str(value)).strip()
    return None


def decode_header_text(raw: str) -> str:
    """An unstructured header (Subject) with its RFC 2047 encoded words decoded."""
    try:
        value = str(policy.default.header_factory("subject", raw))
    except Exception:  # the stdlib header parser has crashed on hostile input
        value = raw
    return one_line(value) or ""


def parse_sender(raw: str | None) -> Sender | None:
    """The first mailbox of a From value, or None when it has no usable address."""
    if not raw:
        return None
    for name, address in _mailboxes(raw):
        address = clean_text(address).strip()
        local, at, domain = address.rpartition("@")
        if at and local and domain and not any(c.isspace() for c in address):
            return Sender(address=address, display_name=one_line(name))
    return None


def _mailboxes(raw: str) -> Iterable[tuple[str, str]]:
    try:
        parsed = policy.default.header_factory("from", raw)
    except Exception:  # e.g. IndexError on "a@" (CPython's header parser)
        parsed = None
    if isinstance(parsed, AddressHeader):
        return [(a.display_name, a.addr_spec) for a in parsed.addresses]
    try:
        pairs = getaddresses([raw])
    except Exception:  # same parser family, same hostile input
        return []
    return [(decode_header_text(name), address) for name, address in pairs]


def first_message_id(raw: str | None) -> str | None:
    """The first ``<id>`` of a Message-ID or In-Reply-To value (or the bare value)."""
    if not raw:
        return None
    ids = message_ids(raw)
    return ids[0] if ids else None


def message_ids(raw: str | None) -> tuple[str, ...]:
    """Every id of a References value, in order."""
    if not raw:
        return ()
    cleaned = clean_text(raw)
    found = _MESSAGE_ID.findall(cleaned) or cleaned.split()
    return tuple(i[:_MAX_SHORT] for i in found)


def threading_of(headers: Headers) -> Threading:
    """Message-ID, In-Reply-To and References, as the message states them."""
    references = message_ids(header(headers, "References"))
    if len(references) > MAX_REFERENCES:
        # RFC 5322 3.6.4: the first id is the thread's root, the last ones its recent parents.
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]
    return Threading(
        message_id=first_message_id(header(headers, "Message-ID")),
        in_reply_to=first_message_id(header(headers, "In-Reply-To")),
        references=references,
    )


def parse_date(raw: str | None) -> datetime | None:
    """The Date header as an aware UTC time (no zone given: UTC), None when unparseable."""
    if not raw:
        return None
    try:
        sent = parsedate_to_datetime(clean_text(raw))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    try:
        return sent.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def header_block(raw: bytes) -> Headers:
    """The (name, value) pairs of a raw header block, as SendGrid posts it."""
    try:
        parsed = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        return list(parsed.raw_items())
    except Exception:  # a header block is provider input; degrade to none
        return []


# --- HTML ---------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "head", "title", "template"})
_LINE = frozenset({"br", "div", "li", "tr", "dt", "dd", "caption", "figcaption", "address"})
_SECTIONS = frozenset({"section", "article", "header", "footer", "aside", "nav", "main", "figure"})
_PARAGRAPH = _SECTIONS | {"h1", "h2", "h3", "h4", "h5", "h6", "p", "blockquote", "pre", "hr"}
_PARAGRAPH |= {"table", "ul", "ol", "dl", "form", "fieldset"}
_CELL = frozenset({"td", "th"})


class _TextExtractor(HTMLParser):
    """Visible text of an HTML body; block elements become line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pending = 0  # line breaks owed before the next visible text
        self._skipping = 0
        self._pre = 0

    def _break(self, lines: int) -> None:
        self._pending = max(self._pending, lines)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag == "br":
            # Consecutive <br> add up: "<div>a</div><div><br></div>" is a blank line.
            self._pending += 1
        elif tag in _PARAGRAPH:
            self._break(2)
            self._pre += tag == "pre"
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELL and self.parts and not self.parts[-1].endswith((" ", "\n")):
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIPPED:  # "<script/>" opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _PARAGRAPH:
            self._break(2)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag in _LINE:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        at_line_start = not self.parts or self._pending or self.parts[-1].endswith("\n")
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
            if at_line_start:
                data = data.lstrip()
            if not data.strip():
                if data and self.parts and not self.parts[-1].endswith(" "):
                    self.parts.append(" ")
                return
        if self._pending and self.parts:
            self.parts.append("\n" * self._pending)
        self._pending = 0
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text a reader sees in ``html``: no tags, scripts or styles; blocks on own lines."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # html.parser is lenient, but this is hostile input
        return " ".join(re.sub(r"<[^>]*>", " ", html).split())
    lines = [line.rstrip() for line in "".join(extractor.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- the MIME tree ------------------------------------------------------------------------


@dataclass
class _Body:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def _is_body(part: Message, content_type: str) -> bool:
    if content_type not in ("text/plain", "text/html"):
        return False
    return part.get_content_disposition() != "attachment" and not _filename(part)


def _filename(part: Message) -> str | None:
    try:
        return one_line(part.get_filename())
    except Exception:  # RFC 2231 parameter decoding on hostile input
        return None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # transfer decoding of hostile input
        return b""
    return data if isinstance(data, bytes) else b""


def _content_id(part: Message) -> str | None:
    raw = header(list(part.raw_items()), "Content-ID")
    if not raw:
        return None
    return one_line(clean_text(raw).strip().strip("<>").strip())


def _size(part: Message) -> int:
    if not part.is_multipart():
        return len(_payload(part))
    payload = part.get_payload()  # an attached message (message/rfc822)
    if not (isinstance(payload, list) and payload and isinstance(payload[0], Message)):
        return 0
    try:
        return len(payload[0].as_bytes())
    except Exception:  # regenerating hostile input; the size is a hint
        return 0


def _attachment(part: Message, content_type: str, number: int) -> Attachment:
    return Attachment(
        filename=_filename(part) or f"attachment-{number}",
        content_type=content_type,
        size_bytes=_size(part),
        content_id=_content_id(part),
    )


def _collect(part: Message, body: _Body, depth: int) -> None:
    content_type = part.get_content_type()
    if content_type == "message/rfc822" or not part.is_multipart():
        if content_type.startswith("multipart/"):
            # A multipart without a boundary: the parser keeps it as one text payload.
            content_type = "text/plain"
        if _is_body(part, content_type):
            text = decode_bytes(_payload(part), part.get_content_charset())
            (body.texts if content_type == "text/plain" else body.htmls).append(text)
        elif len(body.attachments) < MAX_ATTACHMENTS:
            body.attachments.append(_attachment(part, content_type, len(body.attachments) + 1))
        return
    if depth >= _MAX_DEPTH:
        return
    payload = part.get_payload()
    for child in payload if isinstance(payload, list) else ():
        if isinstance(child, Message):
            _collect(child, body, depth + 1)


def _text_and_html(body: _Body) -> tuple[str, str | None]:
    html = "\n".join(body.htmls) if body.htmls else None
    if body.texts:
        text = "\n".join(t.strip("\n") for t in body.texts)
    elif html is not None:
        text = html_to_text(html)
    else:
        text = ""
    return text, html


def parse_message(raw: bytes) -> tuple[Headers, EmailParts]:
    """The headers and the parts of a raw message.

    Raises:
        NormalizationError: the message has no From address.
    """
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        headers: Headers = list(message.raw_items())
        body = _Body()
        _collect(message, body, 0)
    except NormalizationError:
        raise
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        raise NormalizationError(f"unreadable MIME message ({type(exc).__name__})") from None
    sender = parse_sender(header(headers, "From"))
    if sender is None:
        raise NormalizationError("e-mail without a From address")
    subject = header(headers, "Subject")
    text, html = _text_and_html(body)
    return headers, EmailParts(
        sender=sender,
        subject=None if subject is None else decode_header_text(subject),
        text=text,
        html=html,
        threading=threading_of(headers),
        sent_at=parse_date(header(headers, "Date")),
        attachments=tuple(body.attachments),
    )


# --- the event ----------------------------------------------------------------------------


def email_event(
    parts: EmailParts,
    *,
    provider: str,
    received_at: datetime,
    fallback_id: str,
    tenant: str = DEFAULT_TENANT,
) -> InteractionEvent:
    """The interaction event of an inbound e-mail.

    The event id is derived from the Message-ID, so every retry of a message (an MTA after a
    4xx, a provider after a timeout) gets the same id and downstream stages drop the repeat.
    ``fallback_id`` (a digest of what was received) stands in when there is no Message-ID.

    Raises:
        NormalizationError: the parts make no valid event (e.g. an absurdly long address).
    """
    occurred_at = parts.sent_at
    if occurred_at is None or occurred_at > received_at + _MAX_CLOCK_SKEW:
        occurred_at = received_at
    threading = parts.threading
    try:
        return InteractionEvent(
            event_id=provider_event_id(provider, threading.message_id or fallback_id),
            tenant=tenant,
            occurred_at=occurred_at,
            received_at=received_at,
            channel=Channel.EMAIL,
            direction=Direction.INBOUND,
            kind=InteractionKind.MESSAGE,
            identifiers=(Identifier(kind=IdentifierKind.EMAIL, value=parts.sender.address),),
            display_name=parts.sender.display_name,
            content=Content(
                text=truncate_utf8(parts.text, MAX_TEXT_BYTES),
                subject=parts.subject,
                html=None if parts.html is None else truncate_utf8(parts.html, MAX_HTML_BYTES),
                attachments=parts.attachments[:MAX_ATTACHMENTS],
            ),
            provider=ProviderRefs(
                provider=provider,
                message_id=threading.message_id,
                in_reply_to=threading.in_reply_to,
                references=threading.references,
            ),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NormalizationError(f"e-mail makes no valid event: {where}: {first['msg']}") from None


def digest(*chunks: bytes) -> str:
    """A stable stand-in message id for mail without a Message-ID."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(len(chunk).to_bytes(8, "big"))
        hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def normalize_mime(
    raw: bytes,
    received_at: datetime,
    *,
    provider: str = PROVIDER,
    tenant: str = DEFAULT_TENANT,
) -> InteractionEvent:
    """A raw RFC 5322 message (SMTP DATA, SendGrid raw mode) as an interaction event.

    Raises:
        NormalizationError: no From address, or nothing an event can be made of.
    """
    _, parts = parse_message(raw)
    return email_event(
        parts, provider=provider, received_at=received_at, fallback_id=digest(raw), tenant=tenant
    )
