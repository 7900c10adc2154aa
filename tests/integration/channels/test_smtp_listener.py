"""The inbound SMTP listener: a real SMTP client, a real listener, real Kafka."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from omnirouter.channels.email.smtp import SmtpListener, start_smtp_listener
from omnirouter.devstack import StackAddresses
from omnirouter.events import Channel, DeadLetter, IdentifierKind, InteractionEvent, topic_spec
from omnirouter.ingress.publishing import IngressPublisher, provider_event_id
from omnirouter.settings import IngressSettings, KafkaSettings, Settings
from support.kafka import TopicReader
from support.smtp import smtp_listener

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MAX_BYTES = 50_000


@dataclass
class Mailroom:
    """An SMTP listener publishing to this test's topics, and a reader of those topics."""

    listener: SmtpListener
    reader: TopicReader
    prefix: str

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    async def inbound(self, count: int) -> list[InteractionEvent]:
        topic = self.topic("interactions.inbound")
        return await self.reader.wait_for(
            lambda r: (lambda items: items if len(items) >= count else None)(
                r.decoded(topic, InteractionEvent)
            ),
            what=f"{count} inbound event(s)",
        )

    async def dead_letters(self, count: int) -> list[DeadLetter]:
        topic = self.topic("deadletter")
        return await self.reader.wait_for(
            lambda r: (lambda items: items if len(items) >= count else None)(
                r.decoded(topic, DeadLetter)
            ),
            what=f"{count} dead letter(s)",
        )

    async def send(self, message: EmailMessage | bytes, sender: str = "ana@example.com") -> Any:
        """Send as an MTA would, in a thread (smtplib blocks); returns what sendmail returned."""
        # CRLF line ends, as on the wire: smtplib sends bytes as given.
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)

        def deliver() -> Any:
            with smtplib.SMTP(self.listener.host, self.listener.port, timeout=30) as client:
                return client.sendmail(sender, ["support@cx.example.com"], raw)

        return await asyncio.to_thread(deliver)


def settings_for(stack: StackAddresses, prefix: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        ingress=IngressSettings(smtp_host="127.0.0.1", smtp_port=0, max_body_bytes=MAX_BYTES),
    )


@pytest.fixture
async def mailroom(stack: StackAddresses, unique_id: str) -> AsyncIterator[Mailroom]:
    prefix = f"test.{unique_id}."
    settings = settings_for(stack, prefix)
    async with smtp_listener(settings, ("interactions.inbound", "deadletter")) as (
        listener,
        reader,
    ):
        yield Mailroom(listener, reader, prefix)


class _UnreachableKafka:
    """A producer whose writes are never acknowledged (the broker is down)."""

    async def start(self) -> None:
        pass

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise KafkaTimeoutError("no broker acknowledged the write")

    async def stop(self) -> None:
        pass


@pytest.fixture
def broker_down_listener(stack: StackAddresses, unique_id: str) -> Iterator[SmtpListener]:
    prefix = f"test.{unique_id}."
    publisher = IngressPublisher(_UnreachableKafka, topic_prefix=prefix, timeout_s=1)
    listener = start_smtp_listener(settings_for(stack, prefix), publisher)
    try:
        yield listener
    finally:
        listener.stop()


def mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ana Lima <ana@example.com>"
    message["To"] = "support@cx.example.com"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


# --- tests --------------------------------------------------------------------------------


async def test_the_listener_reports_the_port_it_bound(mailroom: Mailroom) -> None:
    assert mailroom.listener.port > 0


async def test_multipart_alternative_mail_with_an_attachment_is_published(
    mailroom: Mailroom,
) -> None:
    message = mail(Subject="Order 1042 never arrived", Message_ID="<smtp-1@mail.example.com>")
    message["Date"] = "Mon, 02 Mar 2026 10:15:00 +0100"
    message.set_content("Hi,\nmy parcel never arrived.\n")
    message.add_alternative("<p>Hi,</p><p>my parcel <b>never</b> arrived.</p>", subtype="html")
    message.add_attachment(PNG, maintype="image", subtype="png", filename="label.png")

    refused = await mailroom.send(message)

    assert refused == {}  # every recipient accepted, and DATA answered 250
    [event] = await mailroom.inbound(1)
    assert event.channel is Channel.EMAIL
    assert [(i.kind, i.value) for i in event.identifiers] == [
        (IdentifierKind.EMAIL, "ana@example.com")
    ]
    assert event.display_name == "Ana Lima"
    assert event.content.subject == "Order 1042 never arrived"
    assert event.content.text == "Hi,\nmy parcel never arrived."
    assert event.content.html is not None and "<b>never</b>" in event.content.html
    assert [(a.filename, a.content_type, a.size_bytes) for a in event.content.attachments] == [
        ("label.png", "image/png", len(PNG))
    ]
    assert event.provider.provider == "smtp"
    assert event.event_id == provider_event_id("smtp", "<smtp-1@mail.example.com>")


async def test_an_iso_8859_1_quoted_printable_mail_arrives_decoded(mailroom: Mailroom) -> None:
    raw = (
        b"From: =?iso-8859-1?q?Jo=E3o_Gon=E7alves?= <joao@example.com>\r\n"
        b"To: support@cx.example.com\r\n"
        b"Subject: =?iso-8859-1?q?N=E3o_recebi_a_encomenda?=\r\n"
        b"Message-ID: <latin-1@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Ol=E1, a encomenda n=E3o chegou. Obrigado!\r\n"
    )
    await mailroom.send(raw, sender="joao@example.com")

    [event] = await mailroom.inbound(1)
    assert event.display_name == "João Gonçalves"
    assert event.content.subject == "Não recebi a encomenda"
    assert event.content.text == "Olá, a encomenda não chegou. Obrigado!"


async def test_an_html_only_mail_gets_text_derived_from_the_html(mailroom: Mailroom) -> None:
    message = mail(Subject="Card declined")
    message.set_content(
        "<html><head><style>.x{}</style></head><body><h1>Card declined</h1>"
        "<div>Tried twice</div><div>today.</div><script>track()</script></body></html>",
        subtype="html",
    )
    await mailroom.send(message)

    [event] = await mailroom.inbound(1)
    assert event.content.text == "Card declined\n\nTried twice\ntoday."
    assert event.content.html is not None and "<h1>" in event.content.html


async def test_a_reply_keeps_in_reply_to_and_references(mailroom: Mailroom) -> None:
    message = mail(
        Subject="Re: Order 1042",
        Message_ID="<reply-2@mail.example.com>",
        In_Reply_To="<ticket-1@cx.example.com>",
        References="<root@mail.example.com> <ticket-1@cx.example.com>",
    )
    message.set_content("Still nothing.")
    await mailroom.send(message)

    [event] = await mailroom.inbound(1)
    assert event.provider.message_id == "<reply-2@mail.example.com>"
    assert event.provider.in_reply_to == "<ticket-1@cx.example.com>"
    assert event.provider.references == ("<root@mail.example.com>", "<ticket-1@cx.example.com>")


async def test_a_resent_message_keeps_its_event_id(mailroom: Mailroom) -> None:
    """An MTA retrying after a lost 250 makes the same event; downstream drops the repeat."""
    message = mail(Subject="twice", Message_ID="<again@example.com>")
    message.set_content("same message")
    await mailroom.send(message)
    await mailroom.send(message)

    first, second = await mailroom.inbound(2)
    assert first.event_id == second.event_id == provider_event_id("smtp", "<again@example.com>")


async def test_a_mail_without_from_is_refused_with_550_and_dead_lettered(
    mailroom: Mailroom,
) -> None:
    raw = b"To: support@cx.example.com\r\nSubject: anonymous\r\n\r\nwho sent this?\r\n"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await mailroom.send(raw)

    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.decode() == "5.6.0 e-mail without a From address"
    [letter] = await mailroom.dead_letters(1)
    assert (letter.stage, letter.reason) == ("ingress", "e-mail without a From address")
    assert letter.original_value() == raw
    assert letter.headers["provider"] == "smtp"
    assert letter.headers["rcpt_to"] == "support@cx.example.com"


async def test_a_mail_past_the_size_limit_is_refused_with_552(mailroom: Mailroom) -> None:
    message = mail(Subject="huge")
    message.set_content("x" * (MAX_BYTES * 2))
    # smtplib declares SIZE=, so the listener refuses at MAIL FROM; without it, after DATA.
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as refused:
        await mailroom.send(message)

    assert refused.value.smtp_code == 552


async def test_a_mail_past_the_size_limit_without_a_declared_size_is_refused_after_data(
    mailroom: Mailroom,
) -> None:
    message = mail(Subject="huge")
    message.set_content("x" * (MAX_BYTES * 2))

    def deliver() -> tuple[int, bytes]:
        with smtplib.SMTP(mailroom.listener.host, mailroom.listener.port) as client:
            client.ehlo()
            client.mail("ana@example.com")  # no SIZE= parameter
            client.rcpt("support@cx.example.com")
            return client.data(message.as_bytes(policy=policy.SMTP))

    code, _ = await asyncio.to_thread(deliver)

    assert code == 552
    await mailroom.reader.poll()
    assert mailroom.reader.on(mailroom.topic("interactions.inbound")) == []


async def test_a_write_kafka_does_not_acknowledge_is_451_so_the_sender_retries(
    broker_down_listener: SmtpListener,
) -> None:
    message = mail(Subject="later")
    message.set_content("please keep me")

    def deliver() -> None:
        with smtplib.SMTP(broker_down_listener.host, broker_down_listener.port) as client:
            raw = message.as_bytes(policy=policy.SMTP)
            client.sendmail("ana@example.com", ["support@cx.example.com"], raw)

    with pytest.raises(smtplib.SMTPDataError) as deferred:
        await asyncio.to_thread(deliver)

    assert deferred.value.smtp_code == 451
    assert deferred.value.smtp_error.decode() == "4.3.0 Try again later"
