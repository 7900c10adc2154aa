"""Twilio SMS and WhatsApp webhooks: real payload shapes, real signatures, real Kafka."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.events import Channel

pytestmark = pytest.mark.integration

TOKEN = "12345678901234567890123456789012"
URL = "https://cx.example.com/webhooks/twilio/messages"

# The fields Twilio posts for an inbound SMS (Messaging webhook), as in its documentation.
SMS = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "NumMedia": "0",
    "ToCity": "",
    "FromZip": "",
    "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "",
    "Body": "Hi, my parcel never arrived",
    "FromCountry": "US",
    "To": "+15017122661",
    "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
    "ToZip": "",
    "NumSegments": "1",
    "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+15550102345",
    "ApiVersion": "2010-04-01",
}
WHATSAPP = {
    "SmsMessageSid": "SMa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
    "NumMedia": "1",
    "ProfileName": "Ana",
    "MessageType": "image",
    "SmsSid": "SMa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
    "WaId": "15550102345",
    "SmsStatus": "received",
    "Body": "Here is the label",
    "To": "whatsapp:+14155238886",
    "MediaContentType0": "image/jpeg",
    "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
    "NumSegments": "1",
    "ReferralNumMedia": "0",
    "MessageSid": "SMa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "whatsapp:+15550102345",
    "ApiVersion": "2010-04-01",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def signed(fields: dict[str, str], url: str = URL) -> dict[str, str]:
    return {**FORM, "X-Twilio-Signature": twilio_signature(TOKEN, url, fields.items())}


@pytest.mark.parametrize("fields", [SMS, WHATSAPP, {**SMS, "Body": "naïve café ☕ & <b>"}])
def test_our_signature_is_the_one_twilios_own_validator_accepts(fields: dict[str, str]) -> None:
    signature = twilio_signature(TOKEN, URL, fields.items())
    assert RequestValidator(TOKEN).validate(URL, fields, signature)
    assert not RequestValidator(TOKEN).validate(URL + "?x=1", fields, signature)


async def test_an_sms_is_published_and_acknowledged_with_empty_twiml(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(
        "/webhooks/twilio/messages", content=urlencode(SMS), headers=signed(SMS)
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    [event] = await gateway.inbound(1)
    assert event.channel is Channel.SMS
    assert [i.address for i in event.identifiers] == ["phone:+15550102345"]
    assert event.content.text == "Hi, my parcel never arrived"
    assert event.provider.message_id == SMS["MessageSid"]


async def test_a_whatsapp_message_keeps_profile_name_and_media(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(
        "/webhooks/twilio/messages", content=urlencode(WHATSAPP), headers=signed(WHATSAPP)
    )

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.channel is Channel.WHATSAPP
    assert event.display_name == "Ana"
    assert event.identifiers[0].value == "+15550102345"
    assert event.identifiers[0].provider == "whatsapp"
    assert [(a.content_type, a.url) for a in event.content.attachments] == [
        ("image/jpeg", WHATSAPP["MediaUrl0"])
    ]


async def test_a_provider_retry_is_acknowledged_but_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        answer = await gateway.client.post(
            "/webhooks/twilio/messages", content=urlencode(SMS), headers=signed(SMS)
        )
        assert answer.status_code == 200
    await gateway.inbound(1)
    await gateway.reader.poll()
    assert len(gateway.reader.on(gateway.topic("interactions.inbound"))) == 1


async def test_missing_or_wrong_signatures_are_refused(gateway) -> None:  # type: ignore[no-untyped-def]
    body = urlencode(SMS)
    missing = await gateway.client.post("/webhooks/twilio/messages", content=body, headers=FORM)
    wrong = await gateway.client.post(
        "/webhooks/twilio/messages", content=body.replace("parcel", "pancake"), headers=signed(SMS)
    )
    assert missing.status_code == 401
    assert wrong.status_code == 403
    await gateway.reader.poll()
    assert gateway.reader.on(gateway.topic("interactions.inbound")) == []


async def test_a_payload_without_sender_is_422_and_dead_lettered(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = {k: v for k, v in SMS.items() if k != "From"}
    answer = await gateway.client.post(
        "/webhooks/twilio/messages", content=urlencode(fields), headers=signed(fields)
    )

    assert answer.status_code == 422
    assert answer.json()["detail"] == "Twilio message without From"
    [letter] = await gateway.dead_letters(1)
    assert letter.stage == "ingress"
    assert letter.reason == "Twilio message without From"
    assert letter.original_value() == urlencode(fields).encode()


async def test_a_body_past_the_size_limit_is_413(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = {**SMS, "Body": "x" * 300_000}
    answer = await gateway.client.post(
        "/webhooks/twilio/messages", content=urlencode(fields), headers=signed(fields)
    )
    assert answer.status_code == 413
