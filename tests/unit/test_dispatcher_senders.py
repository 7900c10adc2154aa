"""Choosing the sender for a reply, and what each sender would put on the wire (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import orjson
import pytest
from pydantic import SecretStr

from omnirouter.channels.delivery import (
    OutboundClients,
    PermanentDeliveryError,
    TransientDeliveryError,
    post_to_provider,
)
from omnirouter.channels.email import outbound as email
from omnirouter.channels.meta_whatsapp import outbound as meta
from omnirouter.channels.tenant_addresses import TenantAddresses
from omnirouter.channels.twilio import outbound as twilio
from omnirouter.channels.webchat import outbound as webchat
from omnirouter.events import (
    Attachment,
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    ProviderRefs,
)
from omnirouter.pipeline.dispatcher import select_sender
from omnirouter.settings import OutboundSettings, Settings

PHONE = Identifier(kind=IdentifierKind.PHONE, value="+15550102345")
WHATSAPP = Identifier(kind=IdentifierKind.PHONE, value="+15550102345", provider="whatsapp")
EMAIL = Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com")
VISITOR = Identifier(kind=IdentifierKind.CHAT_VISITOR, value="v-31")
SETTINGS = Settings(
    outbound=OutboundSettings(
        twilio_sms_from="+15550001000",
        twilio_whatsapp_from="whatsapp:+15550002000",
        email_from="Acme Support <support@acme.example>",
    )
)


def reply(
    channel: str,
    *identifiers: Identifier,
    provider: str = "omnirouter",
    content: Content | None = None,
    **refs: object,
) -> InteractionEvent:
    return InteractionEvent(
        occurred_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        channel=Channel(channel),
        direction=Direction.OUTBOUND,
        identifiers=identifiers,
        content=content or Content(text="On its way"),
        provider=ProviderRefs(provider=provider, **refs),  # type: ignore[arg-type]
        customer_id="cus-1",
        agent_id="agent-7",
    )


# --- selection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "provider"), [("sms", "twilio"), ("email", "smtp"), ("webchat", "webchat")]
)
def test_each_channel_has_its_sender(channel: str, provider: str) -> None:
    assert select_sender(reply(channel, PHONE), OutboundSettings()).provider == provider


@pytest.mark.parametrize(
    ("named", "configured", "chosen"),
    [
        ("meta", "twilio", "meta"),
        ("twilio", "meta", "twilio"),
        ("omnirouter", "twilio", "twilio"),
        ("omnirouter", "meta", "meta"),
    ],
)
def test_whatsapp_goes_through_the_provider_the_event_names_else_the_configured_one(
    named: str, configured: str, chosen: str
) -> None:
    settings = OutboundSettings(whatsapp_provider=configured)  # type: ignore[arg-type]
    assert select_sender(reply("whatsapp", WHATSAPP, provider=named), settings).provider == chosen


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ("voice", "voice has no outbound messages"),
        ("webform", "webform has no outbound messages (reply by email)"),
    ],
)
def test_channels_without_outbound_messages_are_a_permanent_failure(
    channel: str, reason: str
) -> None:
    with pytest.raises(PermanentDeliveryError) as raised:
        select_sender(reply(channel, PHONE), OutboundSettings())
    assert raised.value.reason == reason


# --- what goes on the wire -------------------------------------------------------------------


def test_twilio_sms_form() -> None:
    assert twilio.message_form(reply("sms", EMAIL, PHONE), SETTINGS) == {
        "To": "+15550102345",
        "From": "+15550001000",
        "Body": "On its way",
    }


def test_twilio_whatsapp_form_prefixes_both_numbers_once_and_carries_media() -> None:
    picture = Attachment(
        filename="label.png", content_type="image/png", size_bytes=10, url="https://x/label.png"
    )
    event = reply("whatsapp", WHATSAPP, content=Content(text="Label", attachments=(picture,)))
    assert twilio.message_form(event, SETTINGS) == {
        "To": "whatsapp:+15550102345",
        "From": "whatsapp:+15550002000",
        "Body": "Label",
        "MediaUrl": ["https://x/label.png"],
    }


def test_twilio_without_a_number_to_send_from_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentDeliveryError, match="TWILIO_SMS_FROM"):
        twilio.message_form(reply("sms", PHONE), Settings())


def test_an_sms_reply_without_a_phone_number_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentDeliveryError, match="no phone address"):
        twilio.message_form(reply("sms", EMAIL), SETTINGS)


async def test_a_chat_reply_without_a_visitor_fails_before_touching_redis() -> None:
    with pytest.raises(PermanentDeliveryError, match="no chat_visitor address"):
        await webchat.send(reply("webchat", EMAIL), Settings())


async def test_an_unconfigured_provider_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentDeliveryError, match="twilio is not configured"):
        await twilio.send(reply("sms", PHONE), Settings())
    with pytest.raises(PermanentDeliveryError, match="meta is not configured"):
        await meta.send(reply("whatsapp", WHATSAPP), Settings())
    with pytest.raises(PermanentDeliveryError, match="e-mail is not configured"):
        await email.send(reply("email", EMAIL), Settings())


def test_meta_body_is_a_whatsapp_text_message() -> None:
    assert meta.message_body(reply("whatsapp", WHATSAPP)) == {
        "messaging_product": "whatsapp",
        "to": "15550102345",
        "type": "text",
        "text": {"body": "On its way"},
    }


def test_an_email_reply_threads_under_the_message_it_answers() -> None:
    event = reply(
        "email",
        EMAIL,
        content=Content(text="Hello", subject="Re: Parcel", html="<p>Hello</p>"),
        in_reply_to="m2@mail.example.com",
        references=("<m1@mail.example.com>",),
    )
    message = email.build_message(event, SETTINGS.outbound)
    assert message["To"] == "ana@example.com"
    assert message["From"] == "Acme Support <support@acme.example>"
    assert message["Subject"] == "Re: Parcel"
    assert message["In-Reply-To"] == "<m2@mail.example.com>"
    assert message["References"] == "<m1@mail.example.com> <m2@mail.example.com>"
    assert message["Message-ID"] == f"<{event.event_id}@acme.example>"
    assert message.get_content_type() == "multipart/alternative"


def test_an_email_without_a_subject_gets_the_default_one() -> None:
    message = email.build_message(reply("email", EMAIL), SETTINGS.outbound)
    assert message["Subject"] == SETTINGS.outbound.email_default_subject
    assert message["In-Reply-To"] is None


def test_a_line_break_in_an_email_header_is_a_permanent_failure() -> None:
    event = reply("email", EMAIL, content=Content(text="x", subject="Hi\r\nBcc: all@example.com"))
    with pytest.raises(PermanentDeliveryError, match="cannot write the e-mail"):
        email.build_message(event, SETTINGS.outbound)


def test_the_chat_frame_follows_the_web_chat_contract() -> None:
    event = reply("webchat", VISITOR)
    frame = orjson.loads(webchat.reply_frame(event))
    assert frame == {
        "type": "message",
        "event_id": str(event.event_id),
        "text": "On its way",
        "agent_id": "agent-7",
        "at": frame["at"],
    }
    assert datetime.fromisoformat(frame["at"]) == event.occurred_at


# --- provider answers ------------------------------------------------------------------------


async def post(handler: httpx.MockTransport) -> object:
    async with httpx.AsyncClient(transport=handler) as client:
        return await post_to_provider(client, "https://p.example/send", provider="p", timeout_s=1)


async def test_a_2xx_answer_is_returned() -> None:
    answer = await post(httpx.MockTransport(lambda _: httpx.Response(201, json={"sid": "SM1"})))
    assert answer == {"sid": "SM1"}


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_busy_or_failing_providers_are_transient(status: int) -> None:
    with pytest.raises(TransientDeliveryError, match=f"HTTP {status}"):
        await post(httpx.MockTransport(lambda _: httpx.Response(status, text="busy")))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_refusals_are_permanent(status: int) -> None:
    with pytest.raises(PermanentDeliveryError, match=f"HTTP {status}"):
        await post(httpx.MockTransport(lambda _: httpx.Response(status, text="no")))


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_no_answer_is_transient(error: Exception) -> None:
    def fail(_: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(TransientDeliveryError):
        await post(httpx.MockTransport(fail))


# --- each tenant replies from its own addresses ----------------------------------------------

TENANTS = Settings(
    outbound=SETTINGS.outbound.model_copy(update={"meta_phone_number_id": "1000"}),
    tenants={
        "acme": TenantAddresses(
            sms_numbers=("+15550003000",),
            whatsapp_numbers=("+15550004000",),
            email_addresses=("@acme.example", "help@acme.example"),
            meta_phone_number_ids=("3000",),
        ),
        # Addresses for e-mail only: its SMS and WhatsApp replies use the global senders.
        "globex": TenantAddresses(email_from="Globex Care <care@globex.example>"),
    },
)


def tenant_reply(tenant: str, channel: str, *identifiers: Identifier) -> InteractionEvent:
    return reply(channel, *identifiers).model_copy(update={"tenant": tenant})


def test_an_sms_reply_leaves_from_its_tenants_number() -> None:
    assert twilio.message_form(tenant_reply("acme", "sms", PHONE), TENANTS)["From"] == (
        "+15550003000"
    )
    assert twilio.message_form(tenant_reply("acme", "whatsapp", WHATSAPP), TENANTS)["From"] == (
        "whatsapp:+15550004000"
    )


@pytest.mark.parametrize("tenant", ["globex", "default", "unknown"])
def test_a_tenant_without_a_number_for_the_channel_replies_from_the_global_one(
    tenant: str,
) -> None:
    assert twilio.message_form(tenant_reply(tenant, "sms", PHONE), TENANTS)["From"] == (
        "+15550001000"
    )
    assert twilio.message_form(tenant_reply(tenant, "whatsapp", WHATSAPP), TENANTS)["From"] == (
        "whatsapp:+15550002000"
    )


def test_an_email_reply_leaves_from_its_tenants_address() -> None:
    event = tenant_reply("globex", "email", EMAIL)
    message = email.build_message(
        event, TENANTS.outbound, email_from="Globex <care@globex.example>"
    )
    assert message["From"] == "Globex <care@globex.example>"
    assert message["Message-ID"] == f"<{event.event_id}@globex.example>"


@pytest.mark.parametrize(
    ("tenant", "sender"),
    [
        ("acme", "help@acme.example"),  # the first full address; domains cannot send
        ("globex", "Globex Care <care@globex.example>"),
        ("default", "Acme Support <support@acme.example>"),
    ],
)
async def test_the_email_sender_picks_the_tenants_address(
    tenant: str, sender: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[EmailMessage] = []
    monkeypatch.setattr(email, "_submit", lambda message, _settings: submitted.append(message))
    relay = TENANTS.model_copy(
        update={"outbound": TENANTS.outbound.model_copy(update={"smtp_host": "relay.invalid"})}
    )

    await email.send(tenant_reply(tenant, "email", EMAIL), relay)

    assert [m["From"] for m in submitted] == [sender]


@pytest.mark.parametrize(("tenant", "number_id"), [("acme", "3000"), ("globex", "1000")])
def test_a_meta_reply_is_sent_through_its_tenants_business_number(
    tenant: str, number_id: str
) -> None:
    url = meta.messages_url(tenant_reply(tenant, "whatsapp", WHATSAPP), TENANTS)
    assert url == f"https://graph.facebook.com/v20.0/{number_id}/messages"


# --- each tenant's Twilio (sub-)account --------------------------------------------------------

GLOBAL_SID, ACME_SID = "AC" + "1" * 32, "AC" + "a" * 32


async def sent_with(tenant: str) -> tuple[str, str]:
    """The account URL and basic-auth user a reply of ``tenant`` is sent with."""
    settings = Settings(
        outbound=SETTINGS.outbound.model_copy(
            update={"twilio_account_sid": GLOBAL_SID, "twilio_auth_token": SecretStr("global")}
        ),
        tenants={
            "acme": TenantAddresses(
                sms_numbers=("+15550003000",),
                twilio_account_sid=ACME_SID,
                twilio_auth_token=SecretStr("acme-token"),
            ),
            "globex": TenantAddresses(sms_numbers=("+15550005000",)),
        },
    )
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM1"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        clients = OutboundClients(client, None)  # type: ignore[arg-type]  # no Redis needed
        await twilio.send(tenant_reply(tenant, "sms", PHONE), settings, clients)
    (request,) = seen
    user = base64.b64decode(request.headers["authorization"].split()[1]).decode()
    return request.url.path, user


async def test_a_tenant_with_its_own_twilio_account_sends_through_it() -> None:
    path, user = await sent_with("acme")
    assert path == f"/2010-04-01/Accounts/{ACME_SID}/Messages.json"
    assert user == f"{ACME_SID}:acme-token"


@pytest.mark.parametrize("tenant", ["globex", "default"])
async def test_a_tenant_without_an_account_sends_through_the_global_one(tenant: str) -> None:
    path, user = await sent_with(tenant)
    assert path == f"/2010-04-01/Accounts/{GLOBAL_SID}/Messages.json"
    assert user == f"{GLOBAL_SID}:global"


async def test_a_tenant_with_its_own_meta_token_sends_with_it() -> None:
    settings = Settings(
        outbound=SETTINGS.outbound.model_copy(
            update={"meta_phone_number_id": "1000", "meta_access_token": SecretStr("global")}
        ),
        tenants={
            "acme": TenantAddresses(
                meta_phone_number_ids=("3000",), meta_access_token=SecretStr("acme-meta")
            ),
            "globex": TenantAddresses(meta_phone_number_ids=("5000",)),
        },
    )
    sent: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, request.headers["authorization"]))
        return httpx.Response(200, json={"messages": [{"id": "wamid.1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        clients = OutboundClients(client, None)  # type: ignore[arg-type]  # no Redis needed
        for tenant in ("acme", "globex", "default"):
            await meta.send(tenant_reply(tenant, "whatsapp", WHATSAPP), settings, clients)
    assert [(path.split("/")[-2], auth) for path, auth in sent] == [
        ("3000", "Bearer acme-meta"),
        ("5000", "Bearer global"),
        ("1000", "Bearer global"),
    ]
