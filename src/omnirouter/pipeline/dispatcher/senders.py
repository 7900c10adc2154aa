"""Which sender delivers an outbound interaction: the channel -> sender registry.

Adding an outbound channel is writing ``channels/<name>/outbound.py`` and registering its
``send`` here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from omnirouter.channels.delivery import PermanentDeliveryError, Sender
from omnirouter.channels.email import outbound as email
from omnirouter.channels.meta_whatsapp import outbound as meta_whatsapp
from omnirouter.channels.twilio import outbound as twilio
from omnirouter.channels.webchat import outbound as webchat
from omnirouter.events import Channel, InteractionEvent
from omnirouter.settings import OutboundSettings


@dataclass(frozen=True, slots=True)
class SenderChoice:
    """The provider that delivers a reply, and its sender."""

    provider: str
    send: Sender


CHANNEL_SENDERS: Mapping[Channel, SenderChoice] = {
    Channel.SMS: SenderChoice(twilio.PROVIDER, twilio.send),
    Channel.EMAIL: SenderChoice(email.PROVIDER, email.send),
    Channel.WEBCHAT: SenderChoice(webchat.PROVIDER, webchat.send),
}
"""Channels with one provider."""

WHATSAPP_SENDERS: Mapping[str, SenderChoice] = {
    "twilio": SenderChoice(twilio.PROVIDER, twilio.send),
    "meta": SenderChoice(meta_whatsapp.PROVIDER, meta_whatsapp.send),
}
"""WhatsApp providers by the name events and ``OutboundSettings.whatsapp_provider`` use."""

NO_OUTBOUND: Mapping[Channel, str] = {
    Channel.VOICE: "voice has no outbound messages",
    Channel.WEBFORM: "webform has no outbound messages (reply by email)",
    Channel.API: "api has no outbound messages (the calling system reads the topic)",
}
"""Channels that cannot carry a reply, and what to tell the agent."""


def select_sender(event: InteractionEvent, settings: OutboundSettings) -> SenderChoice:
    """The sender for ``event``'s channel.

    A WhatsApp reply goes through the provider the event names (the one the customer wrote
    through, when the desktop copies it), else through ``settings.whatsapp_provider``: a
    customer's conversation stays on one business number.

    Raises:
        PermanentDeliveryError: the channel has no outbound messages.
    """
    if event.channel is Channel.WHATSAPP:
        named = WHATSAPP_SENDERS.get(event.provider.provider)
        return named or WHATSAPP_SENDERS[settings.whatsapp_provider]
    choice = CHANNEL_SENDERS.get(event.channel)
    if choice is None:
        reason = NO_OUTBOUND.get(event.channel, f"{event.channel} has no outbound sender")
        raise PermanentDeliveryError(reason)
    return choice
