"""Replies by SMS and WhatsApp through Twilio's Messages API.

API reference: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
"""

from __future__ import annotations

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

PROVIDER = "twilio"
_WHATSAPP = "whatsapp:"


def _whatsapp_address(number: str) -> str:
    return number if number.lower().startswith(_WHATSAPP) else f"{_WHATSAPP}{number}"


def message_form(event: InteractionEvent, settings: Settings) -> dict[str, str | list[str]]:
    """The form Twilio expects for ``event``: To, From, Body and any media URLs.

    From is the event's tenant's own number for the channel, else the global one.

    Raises:
        PermanentDeliveryError: not SMS or WhatsApp, no sender number configured, no phone
            number to send to, or nothing to send.
    """
    outbound = settings.outbound
    whatsapp = event.channel is Channel.WHATSAPP
    if event.channel not in (Channel.SMS, Channel.WHATSAPP):
        raise PermanentDeliveryError(f"twilio cannot deliver {event.channel} messages")
    # A brand's customers must hear back from the number they wrote to, never another brand's.
    sender = reply_sender(settings, event.tenant, "whatsapp" if whatsapp else "sms") or (
        outbound.twilio_whatsapp_from if whatsapp else outbound.twilio_sms_from
    )
    if not sender:
        setting = "TWILIO_WHATSAPP_FROM" if whatsapp else "TWILIO_SMS_FROM"
        raise PermanentDeliveryError(f"no OMNIROUTER_OUTBOUND__{setting} to send from")
    phone = recipient(event, IdentifierKind.PHONE, network="whatsapp" if whatsapp else None)
    media = [a.url for a in event.content.attachments if a.url]
    if not event.content.text.strip() and not media:
        raise PermanentDeliveryError("nothing to send: the reply has no text and no media")
    form: dict[str, str | list[str]] = {
        "To": _whatsapp_address(phone.value) if whatsapp else phone.value,
        "From": _whatsapp_address(sender) if whatsapp else sender,
        "Body": event.content.text,
    }
    if media:
        form["MediaUrl"] = media
    return form


async def send(
    event: InteractionEvent, settings: Settings, clients: OutboundClients | None = None
) -> Delivery:
    """Send ``event`` as an SMS or WhatsApp message; Twilio's message SID is the id.

    Raises:
        TransientDeliveryError: Twilio unreachable, timed out, or answered 429/5xx.
        PermanentDeliveryError: not configured, nowhere to send, or refused (4xx).
    """
    outbound = settings.outbound
    sid, token = outbound.twilio_account_sid, outbound.twilio_auth_token
    own = settings.tenants.get(event.tenant)
    if own is not None and own.twilio_account_sid is not None:
        # The brand's own (sub-)account: its numbers send only from there.
        sid, token = own.twilio_account_sid, own.twilio_auth_token
    if not sid or token is None:
        raise PermanentDeliveryError(
            "twilio is not configured (OMNIROUTER_OUTBOUND__TWILIO_ACCOUNT_SID and _AUTH_TOKEN)"
        )
    form = message_form(event, settings)
    url = f"{outbound.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
    async with http_client(settings, clients) as client:
        answer = await post_to_provider(
            client,
            url,
            provider=PROVIDER,
            timeout_s=outbound.request_timeout_s,
            data=form,
            auth=(sid, token.get_secret_value()),
        )
    message_sid = answer.get("sid")
    return Delivery(PROVIDER, message_sid if isinstance(message_sid, str) else None)
