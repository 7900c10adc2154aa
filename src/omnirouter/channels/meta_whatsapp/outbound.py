"""Replies on WhatsApp through Meta's Cloud API (text messages).

API reference: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
"""

from __future__ import annotations

from typing import Any

from omnirouter.channels.delivery import (
    Delivery,
    OutboundClients,
    PermanentDeliveryError,
    http_client,
    post_to_provider,
    recipient,
)
from omnirouter.channels.tenancy import reply_sender
from omnirouter.events import Channel, IdentifierKind, InteractionEvent
from omnirouter.settings import Settings

PROVIDER = "meta"
_NOT_CONFIGURED = (
    "meta is not configured (OMNIROUTER_OUTBOUND__META_PHONE_NUMBER_ID and _ACCESS_TOKEN)"
)


def message_body(event: InteractionEvent) -> dict[str, Any]:
    """The JSON Meta expects for a text reply to the customer's WhatsApp number.

    Raises:
        PermanentDeliveryError: not WhatsApp, no phone number, or no text to send.
    """
    if event.channel is not Channel.WHATSAPP:
        raise PermanentDeliveryError(f"meta cannot deliver {event.channel} messages")
    phone = recipient(event, IdentifierKind.PHONE, network="whatsapp")
    if not event.content.text.strip():
        raise PermanentDeliveryError("nothing to send: the reply has no text")
    return {
        "messaging_product": "whatsapp",
        # WhatsApp ids are the number's digits; Meta accepts them with or without the "+".
        "to": phone.value.lstrip("+"),
        "type": "text",
        "text": {"body": event.content.text},
    }


def messages_url(event: InteractionEvent, settings: Settings) -> str:
    """The Graph API endpoint of the business number ``event``'s tenant replies from.

    The tenant's own phone_number_id, else the global one; one access token serves every
    number of the WhatsApp Business Account.

    Raises:
        PermanentDeliveryError: no phone_number_id for this tenant nor a global one.
    """
    outbound = settings.outbound
    number_id = reply_sender(settings, event.tenant, "meta_whatsapp")
    number_id = number_id or outbound.meta_phone_number_id
    if not number_id:
        raise PermanentDeliveryError(_NOT_CONFIGURED)
    return f"{outbound.meta_api_base.rstrip('/')}/{number_id}/messages"


async def send(
    event: InteractionEvent, settings: Settings, clients: OutboundClients | None = None
) -> Delivery:
    """Send ``event`` as a WhatsApp text message; Meta's ``wamid`` is the id.

    Raises:
        TransientDeliveryError: Meta unreachable, timed out, or answered 429/5xx.
        PermanentDeliveryError: not configured, nowhere to send, or refused (4xx, e.g. outside
            the 24-hour customer service window).
    """
    token = settings.outbound.meta_access_token
    own = settings.tenants.get(event.tenant)
    if own is not None and own.meta_access_token is not None:
        token = own.meta_access_token  # a brand in a Meta business of its own
    if token is None:
        raise PermanentDeliveryError(_NOT_CONFIGURED)
    url = messages_url(event, settings)
    body = message_body(event)
    async with http_client(settings, clients) as client:
        answer = await post_to_provider(
            client,
            url,
            provider=PROVIDER,
            timeout_s=settings.outbound.request_timeout_s,
            json=body,
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )
    messages = answer.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else {}
    wamid = first.get("id") if isinstance(first, dict) else None
    return Delivery(PROVIDER, wamid if isinstance(wamid, str) else None)
