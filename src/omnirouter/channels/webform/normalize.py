"""Web form submissions as interaction events (pure).

A form posts ``application/x-www-form-urlencoded``, ``multipart/form-data`` or a JSON object.
Known fields: ``name``, ``email``, ``phone``, ``subject``, ``message`` and ``submission_id``
(optional, set by the page so a double submit or a resubmission is published once). Every
other field is what the customer typed into the form, so it goes into the text as
``field: value`` lines after the message — not into the event's attributes, which are profile
hints the router matches on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
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

PROVIDER = "webform"
KNOWN_FIELDS = frozenset({"name", "email", "phone", "subject", "message", "submission_id"})
MAX_EXTRA_FIELDS = 50
# Far above any real form; bounds the work a hostile body can cause before normalization.
_MAX_PARSED_FIELDS = 1000

Field = tuple[str, str]


class UnsupportedContentType(ValueError):  # noqa: N818 - reads as the condition (HTTP 415)
    """A body that is none of the form encodings; not a submission at all."""


def parse_submission(raw: bytes, content_type: str) -> list[Field]:
    """The (name, value) fields of a form body, in order; a repeated name appears repeatedly.

    Raises:
        UnsupportedContentType: not urlencoded, multipart or JSON.
        NormalizationError: a body that does not parse as its content type says.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(
                raw.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=_MAX_PARSED_FIELDS,
            )
        except ValueError as exc:
            raise NormalizationError(f"form body does not parse: {exc}") from None
    if media_type == "multipart/form-data":
        return _multipart_fields(raw, content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        return _json_fields(raw)
    raise UnsupportedContentType(f"unsupported content type {media_type or '(none)'!r}")


def submission_message_id(form_id: str, fields: Sequence[Field]) -> str | None:
    """The id the gateway deduplicates on: the page's submission_id, scoped to the form."""
    submission = _first(fields, "submission_id")
    return f"{form_id}:{submission}" if submission else None


def normalize_submission(
    form_id: str, fields: Sequence[Field], received_at: datetime, *, tenant: str = "default"
) -> InteractionEvent:
    """One form submission.

    Raises:
        NormalizationError: neither an e-mail address nor a phone number to answer.
    """
    email = _first(fields, "email").strip()
    phone = _first(fields, "phone").strip()
    identifiers = []
    if email:
        identifiers.append(Identifier(kind=IdentifierKind.EMAIL, value=email))
    if phone:
        identifiers.append(Identifier(kind=IdentifierKind.PHONE, value=phone))
    if not identifiers:
        raise NormalizationError("form submission without email or phone")
    message_id = submission_message_id(form_id, fields)
    return InteractionEvent(
        # Without a submission_id every post is a new submission (and a new event id).
        event_id=provider_event_id(PROVIDER, message_id) if message_id else uuid.uuid4(),
        tenant=tenant,
        occurred_at=received_at,
        received_at=received_at,
        channel=Channel.WEBFORM,
        direction=Direction.INBOUND,
        kind=InteractionKind.FORM_SUBMISSION,
        identifiers=tuple(identifiers),
        display_name=_first(fields, "name").strip() or None,
        content=Content(
            text=_text(_first(fields, "message"), fields),
            subject=_first(fields, "subject").strip() or None,
        ),
        # Like a messaging service's id, the form names the business-side entry point.
        provider=ProviderRefs(provider=PROVIDER, message_id=message_id, conversation_id=form_id),
    )


def _text(message: str, fields: Sequence[Field]) -> str:
    """The message, then one ``field: value`` line per other field (repeats joined)."""
    extra: dict[str, list[str]] = {}
    for name, value in fields:
        if name not in KNOWN_FIELDS:
            extra.setdefault(name, []).append(value)
    lines = [f"{name}: {', '.join(values)}" for name, values in extra.items()]
    if len(lines) > MAX_EXTRA_FIELDS:
        left_out = len(lines) - MAX_EXTRA_FIELDS
        lines = [*lines[:MAX_EXTRA_FIELDS], f"({left_out} more fields not shown)"]
    return "\n\n".join(part for part in (message.strip(), "\n".join(lines)) if part)


def _first(fields: Iterable[Field], name: str) -> str:
    """The first non-empty value of ``name``."""
    return next((value for key, value in fields if key == name and value.strip()), "")


def _multipart_fields(raw: bytes, content_type: str) -> list[Field]:
    # The e-mail parser reads multipart/form-data (RFC 7578 is MIME) without any I/O, which
    # keeps this module pure; the body was already read within the gateway's size limit.
    header = f"Content-Type: {content_type}\r\n\r\n".encode("utf-8", "replace")
    document = BytesParser(policy=policy.HTTP).parsebytes(header + raw)
    if not document.is_multipart():
        raise NormalizationError("multipart form without a boundary")
    fields: list[Field] = []
    for part in document.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename:
            # Uploaded files have nowhere to be kept yet: the agent sees that one was sent.
            fields.append((name, f"{filename} ({len(data)} bytes, file not kept)"))
        else:
            fields.append((name, _decode(data, part.get_content_charset())))
        if len(fields) > _MAX_PARSED_FIELDS:
            raise NormalizationError(f"form with more than {_MAX_PARSED_FIELDS} fields")
    return fields


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset name Python does not know
        return data.decode("utf-8", "replace")


def _json_fields(raw: bytes) -> list[Field]:
    try:
        document = json.loads(raw)
    # RecursionError: nesting deeper than the parser's stack (a crafted body, not a form's).
    except (ValueError, RecursionError) as exc:
        raise NormalizationError(f"form body is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise NormalizationError("form body is not a JSON object")
    fields: list[Field] = []
    for name, value in document.items():
        items = value if isinstance(value, list) else [value]
        fields.extend((name, _scalar(item)) for item in items)
        if len(fields) > _MAX_PARSED_FIELDS:
            raise NormalizationError(f"form with more than {_MAX_PARSED_FIELDS} fields")
    return fields


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
