"""Provider traffic reaches the tenant whose address the customer wrote to (real gateway, Kafka).

Two brands share the router: a message to one brand's number, WhatsApp sender or support
address is published with that brand's tenant; one to an address no brand claims with the
default tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import time
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

import pytest

from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.devstack import StackAddresses
from omnirouter.events import InteractionEvent, topic_spec
from omnirouter.settings import IngressSettings, KafkaSettings, Settings
from support.kafka import TopicReader
from support.smtp import smtp_listener

pytestmark = pytest.mark.integration

TENANTS: dict[str, Any] = {
    "acme": {
        "sms_numbers": ["+15017122661"],
        "voice_numbers": ["+15017122662"],
        "email_addresses": ["@acme.example"],
        "meta_phone_number_ids": ["106540352242922"],
    },
    "globex": {
        "whatsapp_numbers": ["+14155238886"],
        "email_addresses": ["help@globex.example"],
        "meta_phone_number_ids": ["998877"],
        "voice_numbers": ["+15550783881"],  # also its WhatsApp Cloud number, by display number
    },
}
WITH_TENANTS = pytest.mark.parametrize("gateway", [{"tenants": TENANTS}], indirect=True)

TWILIO_TOKEN = "12345678901234567890123456789012"
TWILIO_BASE = "https://cx.example.com/webhooks/twilio"
SENDGRID_TOKEN = "sendgrid-shared-token"
MAILGUN_KEY = "key-mailgun-signing"
META_SECRET = b"meta-app-secret"


async def inbound_by_message_id(gateway: Any, count: int) -> dict[str, str]:
    """provider message id -> tenant, once ``count`` events are on interactions.inbound."""
    events: list[InteractionEvent] = await gateway.inbound(count)
    return {str(e.provider.message_id): e.tenant for e in events}


async def post_twilio(gateway: Any, path: str, fields: dict[str, str]) -> None:
    signature = twilio_signature(TWILIO_TOKEN, f"{TWILIO_BASE}{path}", fields.items())
    answer = await gateway.client.post(
        f"/webhooks/twilio{path}",
        content=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert answer.status_code == 200, answer.text


def twilio_message(sid: str, to: str) -> dict[str, str]:
    customer = "whatsapp:+15550102345" if to.startswith("whatsapp:") else "+15550102345"
    return {"MessageSid": sid, "From": customer, "To": to, "Body": "Where is my parcel?"}


@WITH_TENANTS
async def test_twilio_messages_and_calls_reach_the_tenant_owning_the_number(gateway: Any) -> None:
    await post_twilio(gateway, "/messages", twilio_message("SMacme", "+15017122661"))
    await post_twilio(gateway, "/messages", twilio_message("SMglobex", "whatsapp:+14155238886"))
    await post_twilio(gateway, "/messages", twilio_message("SMnobody", "+15559990000"))
    call = {
        "CallSid": "CAacme",
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": "+15550102345",
        "To": "+15017122662",
    }
    await post_twilio(gateway, "/voice/status", call)

    assert await inbound_by_message_id(gateway, 4) == {
        "SMacme": "acme",
        "SMglobex": "globex",
        "SMnobody": "default",
        "CAacme:completed": "acme",
    }


INITECH_SID = "AC" + "7" * 32
INITECH_TOKEN = "initech-subaccount-auth-token-000"
WITH_SUBACCOUNT = pytest.mark.parametrize(
    "gateway",
    [
        {
            "tenants": {
                **TENANTS,
                "initech": {
                    "sms_numbers": ["+15550006000"],
                    "twilio_account_sid": INITECH_SID,
                    "twilio_auth_token": INITECH_TOKEN,
                },
            }
        }
    ],
    indirect=True,
)


async def post_signed(
    gateway: Any, fields: dict[str, str], token: str, account: str | None
) -> tuple[int, str]:
    """A Twilio message webhook naming ``account`` (AccountSid), signed with ``token``."""
    if account is not None:
        fields = {**fields, "AccountSid": account}
    url = f"{TWILIO_BASE}/messages"
    answer = await gateway.client.post(
        "/webhooks/twilio/messages",
        content=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, fields.items()),
        },
    )
    return answer.status_code, answer.text


@WITH_SUBACCOUNT
async def test_a_tenants_own_twilio_account_signs_its_webhooks_and_no_one_elses(
    gateway: Any,
) -> None:
    initech, acme = "+15550006000", "+15017122661"
    # Signed by Initech's sub-account: accepted as Initech's.
    assert await post_signed(
        gateway, twilio_message("SMinitech", initech), INITECH_TOKEN, INITECH_SID
    ) == (200, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>')
    # Initech's number, signed by the global account: refused (Initech's numbers are not there).
    status, text = await post_signed(
        gateway, twilio_message("SMforged1", initech), TWILIO_TOKEN, None
    )
    assert status == 403 and "takes only webhooks signed by its Twilio account" in text
    # Initech's token used for Acme's number: a leaked brand token stays within its brand.
    status, text = await post_signed(
        gateway, twilio_message("SMforged2", acme), INITECH_TOKEN, INITECH_SID
    )
    assert status == 403 and f"{INITECH_SID} does not own tenant 'acme'" in text
    # Claiming Initech's account without its token: the signature does not match.
    status, text = await post_signed(
        gateway, twilio_message("SMforged3", initech), TWILIO_TOKEN, INITECH_SID
    )
    assert status == 403 and "does not match" in text
    # The global account still signs for everyone else.
    await post_twilio(gateway, "/messages", twilio_message("SMacme", acme))

    assert await inbound_by_message_id(gateway, 2) == {"SMinitech": "initech", "SMacme": "acme"}


def mailgun_fields(message_id: str, recipient: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    token = hashlib.sha256(message_id.encode()).hexdigest()[:50]
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    return {
        "recipient": recipient,
        "from": "Ana Lima <ana@example.com>",
        "subject": "Order 1042",
        "body-plain": "Any news?",
        "Message-Id": message_id,
        "timestamp": stamp,
        "token": token,
        "signature": signature.hexdigest(),
    }


def sendgrid_fields(message_id: str, envelope_to: str, to_header: str) -> dict[str, str]:
    return {
        "headers": f"From: ana@example.com\nTo: {to_header}\nMessage-ID: {message_id}\n",
        "from": "Ana Lima <ana@example.com>",
        "to": to_header,
        "subject": "Order 1042",
        "text": "Still nothing.",
        "envelope": json.dumps({"to": [envelope_to], "from": "ana@example.com"}),
    }


@WITH_TENANTS
async def test_email_webhooks_reach_the_tenant_owning_the_address_or_domain(
    gateway: Any,
) -> None:
    # SendGrid always posts multipart/form-data; httpx only does with a file in it.
    no_file = {"attachment-none": ("", b"", "application/octet-stream")}
    posts = [
        # Bcc'd to Globex's help desk: only the envelope knows.
        ("sendgrid", sendgrid_fields("<sg-1@mail.example.com>", "help@globex.example", "x@y.z")),
        ("sendgrid", sendgrid_fields("<sg-2@mail.example.com>", "ana@example.com", "someone")),
        ("mailgun", mailgun_fields("<mg-1@mail.example.com>", "orders@acme.example")),
    ]
    for provider, fields in posts:
        if provider == "sendgrid":
            answer = await gateway.client.post(
                "/webhooks/email/sendgrid",
                params={"token": SENDGRID_TOKEN},
                data=fields,
                files=no_file,
            )
        else:
            answer = await gateway.client.post("/webhooks/email/mailgun", data=fields)
        assert answer.status_code == 200, answer.text

    assert await inbound_by_message_id(gateway, 3) == {
        "<sg-1@mail.example.com>": "globex",
        "<sg-2@mail.example.com>": "default",
        "<mg-1@mail.example.com>": "acme",
    }


def meta_change(wamid: str, phone_number_id: str, display: str) -> dict[str, Any]:
    message = {
        "from": "16505551234",
        "id": wamid,
        "timestamp": "1739321024",
        "text": {"body": "Hola"},
        "type": "text",
    }
    return {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display, "phone_number_id": phone_number_id},
            "messages": [message],
        },
    }


@WITH_TENANTS
async def test_whatsapp_cloud_messages_reach_the_tenant_of_each_business_number(
    gateway: Any,
) -> None:
    # One app serving several brands' numbers: one notification, one tenant per change.
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    meta_change("wamid.acme", "106540352242922", "15017122661"),
                    meta_change("wamid.globex", "unlisted", "15550783881"),
                    meta_change("wamid.nobody", "unlisted", "15559990000"),
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    digest = hmac.new(META_SECRET, body, hashlib.sha256).hexdigest()
    answer = await gateway.client.post(
        "/webhooks/meta/whatsapp",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
    )
    assert answer.status_code == 200, answer.text

    assert await inbound_by_message_id(gateway, 3) == {
        "wamid.acme": "acme",
        "wamid.globex": "globex",
        "wamid.nobody": "default",
    }


# --- SMTP ---------------------------------------------------------------------------------


@pytest.fixture
async def smtp_gateway(
    stack: StackAddresses, unique_id: str
) -> AsyncIterator[tuple[int, TopicReader, str]]:
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        ingress=IngressSettings(smtp_host="127.0.0.1", smtp_port=0),
        tenants=TENANTS,
    )
    async with smtp_listener(settings) as (listener, reader):
        yield listener.port, reader, topic_spec("interactions.inbound").name(prefix)


async def test_smtp_mail_reaches_the_tenant_of_its_envelope_recipient(
    smtp_gateway: tuple[int, TopicReader, str],
) -> None:
    port, reader, topic = smtp_gateway

    def deliver(message_id: str, rcpt_to: list[str]) -> None:
        message = EmailMessage()
        message["From"] = "ana@example.com"
        message["To"] = "undisclosed-recipients:;"
        message["Message-ID"] = message_id
        message.set_content("Any news about order 1042?")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("ana@example.com", rcpt_to, message.as_bytes(policy=policy.SMTP))

    await asyncio.to_thread(deliver, "<smtp-1@mail.example.com>", ["Help@Globex.example"])
    await asyncio.to_thread(
        deliver, "<smtp-2@mail.example.com>", ["ana@example.com", "sales@acme.example"]
    )
    await asyncio.to_thread(deliver, "<smtp-3@mail.example.com>", ["support@cx.example.com"])

    events = await reader.wait_for(
        lambda r: (lambda items: items if len(items) >= 3 else None)(
            r.decoded(topic, InteractionEvent)
        ),
        what="3 inbound e-mails",
    )
    assert {e.provider.message_id: e.tenant for e in events} == {
        "<smtp-1@mail.example.com>": "globex",
        "<smtp-2@mail.example.com>": "acme",
        "<smtp-3@mail.example.com>": "default",
    }
