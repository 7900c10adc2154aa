"""SendGrid Inbound Parse and Mailgun routes posts as interaction events (pure).

Payload references:
- SendGrid: https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email
  (multipart/form-data; text fields in the charsets its ``charsets`` field names; "raw" mode
  posts the whole message in ``email``);
- Mailgun: https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/receive-http
  (UTF-8 form fields; multipart only when there are attachments; signed with HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header

from omnirouter.channels.email import mime
from omnirouter.channels.errors import NormalizationError
from omnirouter.events import DEFAULT_TENANT, Attachment, InteractionEvent

SENDGRID = "sendgrid"
MAILGUN = "mailgun"
_MAX_PARTS = 1000
_ATTACHMENT_FIELD = re.compile(r"^attachment-?(\d{1,4})$")


# --- form bodies --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormFile:
    """An uploaded file: what it is and how big, never its bytes."""

    filename: str | None
    content_type: str | None
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Form:
    """A posted form with every field's raw bytes (decoded later, in the charset it declares)."""

    fields: Mapping[str, bytes] = field(default_factory=dict)
    files: Mapping[str, FormFile] = field(default_factory=dict)

    def text(self, name: str, charset: str | None = "utf-8") -> str | None:
        """Field ``name`` decoded (None when absent)."""
        raw = self.fields.get(name)
        return None if raw is None else mime.decode_bytes(raw, charset)

    def json(self, name: str) -> Any:
        """Field ``name`` parsed as JSON (None when absent or not JSON)."""
        raw = self.fields.get(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's stack
            return None


def parse_form(body: bytes, content_type: str | None) -> Form:
    """A multipart/form-data or urlencoded body.

    Raises:
        NormalizationError: another content type, or a body that does not parse as one.
    """
    kind, options = parse_options_header(content_type or "")
    if kind == b"application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind != b"multipart/form-data":
        raise NormalizationError(f"expected a form post, got {content_type or 'no content type'}")
    boundary = options.get(b"boundary")
    if not boundary:
        raise NormalizationError("multipart form without a boundary")
    try:
        return _multipart(body, boundary)
    except NormalizationError:
        raise
    except Exception as exc:  # the parser's errors are ValueError/AssertionError
        raise NormalizationError(f"unreadable multipart form ({type(exc).__name__})") from None


def _urlencoded(body: bytes) -> Form:
    fields: dict[str, bytes] = {}
    # Latin-1 maps every byte to one code point, so the percent-decoded bytes survive as-is.
    for name, value in parse_qsl(
        body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        fields.setdefault(name, value.encode("latin-1"))
    return Form(fields=fields)


class _Parts:
    """Collects the parts python-multipart reports: fields kept, files only measured."""

    def __init__(self) -> None:
        self.fields: dict[str, bytes] = {}
        self.files: dict[str, FormFile] = {}
        self._headers: dict[bytes, bytes] = {}
        self._name: list[bytes] = []
        self._value: list[bytes] = []
        self._data: list[bytes] = []
        self._size = 0
        self._count = 0

    def part_begin(self) -> None:
        self._count += 1
        if self._count > _MAX_PARTS:
            raise NormalizationError(f"form with more than {_MAX_PARTS} parts")
        self._headers, self._data, self._size = {}, [], 0

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._name.append(data[start:end])

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value.append(data[start:end])

    def header_end(self) -> None:
        name = b"".join(self._name).strip().lower()
        self._headers[name] = b"".join(self._value).strip()
        self._name, self._value = [], []

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        self._data.append(data[start:end])

    def part_end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name")
        if name is None:
            return
        key = mime.decode_bytes(name, "utf-8")
        filename = options.get(b"filename")
        if filename is None:
            self.fields.setdefault(key, b"".join(self._data))
        else:
            content_type = self._headers.get(b"content-type")
            self.files.setdefault(
                key,
                FormFile(
                    # Browsers and providers send UTF-8 file names raw; the parser read Latin-1.
                    filename=mime.decode_bytes(filename, "utf-8") or None,
                    content_type=None if not content_type else content_type.decode("latin-1"),
                    size_bytes=self._size,
                ),
            )
        self._data = []


def _multipart(body: bytes, boundary: bytes) -> Form:
    parts = _Parts()
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.part_begin,
            "on_part_data": parts.part_data,
            "on_part_end": parts.part_end,
            "on_header_field": parts.header_field,
            "on_header_value": parts.header_value,
            "on_header_end": parts.header_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return Form(fields=parts.fields, files=parts.files)


# --- shared -------------------------------------------------------------------------------


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison of a shared secret."""
    return hmac.compare_digest(expected.encode(), given.encode())


def _attachment_files(form: Form) -> list[tuple[int, str, FormFile]]:
    found = []
    for name, upload in form.files.items():
        match = _ATTACHMENT_FIELD.match(name)
        if match:
            found.append((int(match.group(1)), name, upload))
    return sorted(found)[: mime.MAX_ATTACHMENTS]


# Fields that differ between two posts of the same message; left out of its fallback id.
_VOLATILE = frozenset({"timestamp", "token", "signature", "spam_score", "spam_report"})


def _event(
    parts: mime.EmailParts, form: Form, *, provider: str, received_at: datetime, tenant: str
) -> InteractionEvent:
    fallback = mime.digest(*(form.fields[k] for k in sorted(form.fields) if k not in _VOLATILE))
    return mime.email_event(
        parts, provider=provider, received_at=received_at, fallback_id=fallback, tenant=tenant
    )


# --- SendGrid -----------------------------------------------------------------------------


def normalize_sendgrid(
    form: Form, received_at: datetime, *, tenant: str = DEFAULT_TENANT
) -> InteractionEvent:
    """A SendGrid Inbound Parse post, parsed or raw mode.

    Raises:
        NormalizationError: no From address, or nothing an event can be made of.
    """
    raw = form.fields.get("email")
    if raw is not None:  # "Send Raw": the whole MIME message
        return mime.normalize_mime(raw, received_at, provider=SENDGRID, tenant=tenant)
    charsets = form.json("charsets")
    charsets = charsets if isinstance(charsets, dict) else {}

    def text(name: str) -> str | None:
        charset = charsets.get(name)
        return form.text(name, charset if isinstance(charset, str) else "utf-8")

    headers = mime.header_block(form.fields.get("headers", b""))
    sender = mime.parse_sender(text("from")) or mime.parse_sender(mime.header(headers, "From"))
    if sender is None:
        raise NormalizationError("SendGrid message without a From address")
    subject = text("subject")
    if subject is None:
        subject = mime.header(headers, "Subject")
    html = text("html")
    body = text("text")
    parts = mime.EmailParts(
        sender=sender,
        subject=None if subject is None else mime.decode_header_text(subject),
        text=body if body else (mime.html_to_text(html) if html else ""),
        html=html,
        threading=mime.threading_of(headers),
        sent_at=mime.parse_date(mime.header(headers, "Date")),
        attachments=_sendgrid_attachments(form),
    )
    return _event(parts, form, provider=SENDGRID, received_at=received_at, tenant=tenant)


def _sendgrid_attachments(form: Form) -> tuple[Attachment, ...]:
    info = form.json("attachment-info")
    info = info if isinstance(info, dict) else {}
    attachments = []
    for number, name, upload in _attachment_files(form):
        meta = info.get(name)
        meta = meta if isinstance(meta, dict) else {}
        filename = _str(meta.get("filename")) or mime.one_line(upload.filename)
        content_type = _str(meta.get("type")) or upload.content_type
        attachments.append(
            Attachment(
                filename=filename or f"attachment-{number}",
                content_type=content_type or "application/octet-stream",
                size_bytes=upload.size_bytes,
                content_id=_str(meta.get("content-id")),
            )
        )
    return tuple(attachments)


def _str(value: object) -> str | None:
    return mime.one_line(value) if isinstance(value, str) else None


# --- Mailgun ------------------------------------------------------------------------------


class Verdict(Enum):
    """The outcome of checking a Mailgun signature."""

    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"
    STALE = "stale"


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """The signature Mailgun sends: hex HMAC-SHA256 of timestamp + token."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def check_mailgun_signature(
    form: Form, *, signing_key: str, now: float, tolerance_s: float
) -> Verdict:
    """Whether ``form`` carries Mailgun's signature, made within ``tolerance_s`` of ``now``."""
    timestamp = form.text("timestamp")
    token = form.text("token")
    signature = form.text("signature")
    if not timestamp or not token or not signature:
        return Verdict.MISSING
    expected = mailgun_signature(signing_key, timestamp, token)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        return Verdict.INVALID
    try:
        signed_at = float(timestamp)
    except ValueError:
        return Verdict.INVALID
    # The age only matters for a genuine signature: a forgery is a forgery whatever its time.
    return Verdict.VALID if abs(now - signed_at) <= tolerance_s else Verdict.STALE


def normalize_mailgun(
    form: Form, received_at: datetime, *, tenant: str = DEFAULT_TENANT
) -> InteractionEvent:
    """A Mailgun route's post, fully parsed or raw MIME (``body-mime``).

    Raises:
        NormalizationError: no From address, or nothing an event can be made of.
    """
    raw = form.fields.get("body-mime")
    if raw is not None:
        return mime.normalize_mime(raw, received_at, provider=MAILGUN, tenant=tenant)
    headers = _mailgun_headers(form)
    sender = mime.parse_sender(form.text("from")) or mime.parse_sender(mime.header(headers, "From"))
    if sender is None:
        raise NormalizationError("Mailgun message without a From address")
    message_id = mime.first_message_id(form.text("Message-Id"))
    threading = mime.threading_of(headers)
    if message_id:
        threading = mime.Threading(message_id, threading.in_reply_to, threading.references)
    subject = form.text("subject")
    if subject is None:
        subject = mime.header(headers, "Subject")
    html = form.text("body-html")
    body = form.text("body-plain")
    parts = mime.EmailParts(
        sender=sender,
        subject=None if subject is None else mime.decode_header_text(subject),
        text=body if body else (mime.html_to_text(html) if html else ""),
        html=html,
        threading=threading,
        sent_at=mime.parse_date(mime.header(headers, "Date")),
        attachments=_mailgun_attachments(form),
    )
    return _event(parts, form, provider=MAILGUN, received_at=received_at, tenant=tenant)


def _mailgun_headers(form: Form) -> mime.Headers:
    pairs = form.json("message-headers")
    if not isinstance(pairs, list):
        return []
    return [
        (pair[0], pair[1])
        for pair in pairs
        if isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
    ]


def _mailgun_attachments(form: Form) -> tuple[Attachment, ...]:
    cid_map = form.json("content-id-map")
    cids = (
        {v: k.strip("<>") for k, v in cid_map.items() if isinstance(v, str)}
        if isinstance(cid_map, dict)
        else {}
    )
    return tuple(
        Attachment(
            filename=mime.one_line(upload.filename) or f"attachment-{number}",
            content_type=upload.content_type or "application/octet-stream",
            size_bytes=upload.size_bytes,
            content_id=cids.get(name) or None,
        )
        for number, name, upload in _attachment_files(form)
    )
