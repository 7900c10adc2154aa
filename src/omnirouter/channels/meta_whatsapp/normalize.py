"""WhatsApp Cloud API ``messages`` notifications as interaction events (pure).

One notification may carry several messages (and delivery statuses) across entries and changes;
each message becomes one event, identified by its ``wamid``.

Payload reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
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

PROVIDER = "meta"
WHATSAPP_OBJECT = "whatsapp_business_account"
DEFAULT_MEDIA_BASE = "https://graph.facebook.com"
MEDIA_TYPES = frozenset({"image", "document", "audio", "video", "sticker"})

BusinessNumberTenant = Callable[[str, str], str]
"""(phone_number_id, display_phone_number) of the business number written to -> its tenant."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What one webhook notification holds for us."""

    events: tuple[InteractionEvent, ...]
    statuses: int
    """Delivery receipts for our outbound messages: acknowledged, not published."""
    failures: tuple[str, ...]
    """Why each message that made no event could not be normalized."""


def parse_notification(raw: bytes) -> Mapping[str, Any]:
    """The JSON object of a notification body.

    Raises:
        NormalizationError: the body is not a JSON object.
    """
    try:
        payload = json.loads(raw)
    # RecursionError: nesting deeper than the parser's stack (a crafted body, not Meta's).
    except (ValueError, RecursionError) as exc:
        raise NormalizationError(f"WhatsApp notification is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise NormalizationError("WhatsApp notification is not a JSON object")
    return payload


def normalize_notification(
    payload: Mapping[str, Any],
    received_at: datetime,
    *,
    tenant: str = "default",
    tenant_of: BusinessNumberTenant | None = None,
    media_base: str = DEFAULT_MEDIA_BASE,
) -> Notification:
    """Every customer message of a notification; other objects and fields yield nothing.

    Args:
        payload: the parsed notification.
        received_at: when the gateway received it (a message without timestamp occurred then).
        tenant: the tenant the events belong to, unless ``tenant_of`` is given.
        tenant_of: the tenant of each change's business number (its ``metadata``): one app
            may serve the numbers of several brands, even within one notification.
        media_base: Graph API base URL; an attachment's URL is ``<media_base>/<media id>``,
            which answers (with the access token) the media's download URL.

    Raises:
        NormalizationError: a WhatsApp notification whose structure is not Meta's.
    """
    if payload.get("object") != WHATSAPP_OBJECT:
        return Notification((), 0, ())
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise NormalizationError("WhatsApp notification without an entry list")
    events: list[InteractionEvent] = []
    failures: list[str] = []
    statuses = 0
    for entry in entries:
        for change in _objects(_field(entry, "changes")):
            # Other fields (account updates, template reviews…) are not customer touchpoints.
            if change.get("field") != "messages":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise NormalizationError("WhatsApp messages change without a value object")
            names = _profile_names(value)
            metadata = value.get("metadata")
            owner = (
                tenant
                if tenant_of is None
                else tenant_of(
                    _text(metadata, "phone_number_id"), _text(metadata, "display_phone_number")
                )
            )
            statuses += len(_objects(value.get("statuses")))
            for index, message in enumerate(_objects(value.get("messages"))):
                try:
                    events.append(
                        normalize_message(
                            message,
                            received_at,
                            display_names=names,
                            tenant=owner,
                            media_base=media_base,
                        )
                    )
                except ValueError as exc:  # NormalizationError, or the contract refusing a value
                    wamid = _text(message, "id") or f"message #{index}"
                    failures.append(f"{wamid}: {exc}")
    return Notification(tuple(events), statuses, tuple(failures))


def normalize_message(
    message: Mapping[str, Any],
    received_at: datetime,
    *,
    display_names: Mapping[str, str] | None = None,
    tenant: str = "default",
    media_base: str = DEFAULT_MEDIA_BASE,
) -> InteractionEvent:
    """One inbound WhatsApp message.

    Raises:
        NormalizationError: no sender, no id, or a timestamp that is not unix seconds.
    """
    sender = _text(message, "from")
    wamid = _text(message, "id")
    if not sender:
        raise NormalizationError("WhatsApp message without from")
    if not wamid:
        raise NormalizationError("WhatsApp message without id")
    message_type = _text(message, "type") or "unknown"
    text, attachments, reacted_to = _content(message_type, message, media_base)
    context = message.get("context")
    in_reply_to = reacted_to or (_text(context, "id") if isinstance(context, dict) else "")
    return InteractionEvent(
        event_id=provider_event_id(PROVIDER, wamid),
        tenant=tenant,
        occurred_at=_occurred_at(message.get("timestamp"), received_at),
        received_at=received_at,
        channel=Channel.WHATSAPP,
        direction=Direction.INBOUND,
        kind=InteractionKind.MESSAGE,
        identifiers=(
            Identifier(
                kind=IdentifierKind.PHONE, value=_international(sender), provider="whatsapp"
            ),
        ),
        display_name=(display_names or {}).get(sender) or None,
        content=Content(text=text, attachments=attachments),
        provider=ProviderRefs(provider=PROVIDER, message_id=wamid, in_reply_to=in_reply_to or None),
    )


def _content(
    message_type: str, message: Mapping[str, Any], media_base: str
) -> tuple[str, tuple[Attachment, ...], str]:
    """Text, attachments and the id of the message reacted to, by message type."""
    body = message.get(message_type)
    part: Mapping[str, Any] = body if isinstance(body, dict) else {}
    if message_type == "text":
        return _text(part, "body"), (), ""
    if message_type in MEDIA_TYPES:
        attachment = _attachment(message_type, part, media_base)
        # A document without caption still says what it is by its file name.
        text = _text(part, "caption") or (
            _text(part, "filename") if message_type == "document" else ""
        )
        return text, (attachment,), ""
    if message_type == "location":
        return _location(part), (), ""
    if message_type == "interactive":
        return _interactive(part), (), ""
    if message_type == "button":  # quick-reply button of a template message
        return _text(part, "text") or _text(part, "payload"), (), ""
    if message_type == "reaction":
        emoji = _text(part, "emoji")
        text = f"Reacted {emoji}" if emoji else "Removed a reaction"
        return text, (), _text(part, "message_id")
    if message_type == "system":
        return _text(part, "body"), (), ""
    if message_type == "contacts":
        return _shared_contacts(message.get("contacts")), (), ""
    # "unsupported"/"unknown" and types newer than this code: the customer still wrote to us.
    return f"[WhatsApp {message_type} message]", (), ""


def _attachment(message_type: str, media: Mapping[str, Any], media_base: str) -> Attachment:
    media_id = _text(media, "id")
    return Attachment(
        filename=_text(media, "filename") or f"{message_type}-{media_id or 'unknown'}",
        content_type=_text(media, "mime_type") or "application/octet-stream",
        size_bytes=0,  # Meta does not say; the media stays with Meta until downloaded
        url=f"{media_base.rstrip('/')}/{media_id}" if media_id else None,
    )


def _location(location: Mapping[str, Any]) -> str:
    place = ", ".join(p for p in (_text(location, "name"), _text(location, "address")) if p)
    latitude, longitude = location.get("latitude"), location.get("longitude")
    where = f"({latitude}, {longitude})" if latitude is not None and longitude is not None else ""
    lines = [" ".join(p for p in ("Location:", place, where) if p)]
    if url := _text(location, "url"):
        lines.append(url)
    return "\n".join(lines)


def _interactive(interactive: Mapping[str, Any]) -> str:
    reply_type = _text(interactive, "type")
    reply = interactive.get(reply_type)
    if isinstance(reply, dict):
        # button_reply and list_reply carry the title the customer tapped; nfm_reply (Flows)
        # a body text.
        return _text(reply, "title") or _text(reply, "body") or f"[{reply_type}]"
    return "[interactive reply]"


def _shared_contacts(contacts: Any) -> str:
    cards = []
    for card in _objects(contacts):
        name = card.get("name")
        formatted = _text(name, "formatted_name") if isinstance(name, dict) else ""
        phones = [_text(p, "phone") for p in _objects(card.get("phones")) if _text(p, "phone")]
        cards.append(" ".join(p for p in (formatted, ", ".join(phones)) if p) or "contact card")
    return "Shared contact: " + "; ".join(cards) if cards else "[shared contact]"


def _profile_names(value: Mapping[str, Any]) -> dict[str, str]:
    names = {}
    for contact in _objects(value.get("contacts")):
        profile = contact.get("profile")
        name = _text(profile, "name") if isinstance(profile, dict) else ""
        if wa_id := _text(contact, "wa_id"):
            names[wa_id] = name
    return names


def _occurred_at(timestamp: Any, received_at: datetime) -> datetime:
    if timestamp is None or timestamp == "":
        return received_at
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise NormalizationError(f"WhatsApp timestamp {timestamp!r} is not unix seconds") from None


def _international(number: str) -> str:
    # WhatsApp ids are international numbers without the "+": read without it, the identity
    # worker would take them for national numbers of its default region.
    return f"+{number}" if number.isdigit() else number


def _field(container: Any, key: str) -> Any:
    return container.get(key) if isinstance(container, dict) else None


def _objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of a list (anything else in it is not Meta's and is skipped)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _text(container: Any, key: str) -> str:
    value = _field(container, key)
    return value if isinstance(value, str) else ""
