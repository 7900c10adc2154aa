"""The web chat socket on a real server: real Kafka acknowledgements, real Redis replies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from omnirouter.channels.webchat.protocol import MAX_TEXT_CHARS, message_event_id
from omnirouter.events import Channel, IdentifierKind
from omnirouter.redis_keys import ChatKeys
from support.served_gateway import served_gateway
from support.waiting import eventually_async

pytestmark = pytest.mark.integration

FRAME_TIMEOUT_S = 30.0


@pytest.fixture
def chat_host(gateway: Any) -> Iterator[str]:
    """host:port of a real server running the gateway on the test's topics and keys."""
    with served_gateway(gateway.settings) as address:
        yield address


@contextlib.asynccontextmanager
async def chat(
    host: str, visitor_id: str, tenant: str = "default"
) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{host}/chat/ws?visitor_id={visitor_id}&tenant={tenant}") as ws:
        yield ws


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
    return frame


async def say(ws: ClientConnection, text: str, client_message_id: str | None = None) -> str:
    message_id = client_message_id or uuid.uuid4().hex
    await ws.send(json.dumps({"type": "message", "client_message_id": message_id, "text": text}))
    return message_id


def reply(text: str) -> bytes:
    return json.dumps(
        {
            "type": "message",
            "event_id": str(uuid.uuid4()),
            "text": text,
            "agent_id": "agent-7",
            "at": "2025-03-04T12:31:00+00:00",
        }
    ).encode()


def keys(gateway: Any, visitor_id: str, tenant: str = "default") -> ChatKeys:
    return ChatKeys(gateway.settings.redis.key_prefix, tenant, visitor_id)


async def subscribed(redis_client: aioredis.Redis, channel: str, count: int = 1) -> None:
    async def probe() -> bool:
        [(_, listeners)] = await redis_client.pubsub_numsub(channel)
        return int(listeners) >= count

    await eventually_async(probe, timeout_s=FRAME_TIMEOUT_S, what=f"{count} subscriber(s)")


async def test_a_message_is_acknowledged_once_kafka_has_it(gateway: Any, chat_host: str) -> None:
    """The ack names the event that is on interactions.inbound, keyed by the chat visitor."""
    async with chat(chat_host, "visitor-1", tenant="acme") as ws:
        message_id = await say(ws, "Where is my order?")
        ack = await next_frame(ws)

    assert ack == {
        "type": "ack",
        "client_message_id": message_id,
        "event_id": str(message_event_id("visitor-1", message_id)),
    }
    [event] = await gateway.inbound(1)
    assert str(event.event_id) == ack["event_id"]
    assert event.channel is Channel.WEBCHAT
    assert event.tenant == "acme"
    assert [i.address for i in event.identifiers] == ["chat_visitor:visitor-1"]
    assert event.content.text == "Where is my order?"
    record = gateway.reader.on(gateway.topic("interactions.inbound"))[0]
    assert record.key == b"chat_visitor:visitor-1"


async def test_a_resent_message_is_acknowledged_again_but_published_once(
    gateway: Any, chat_host: str
) -> None:
    async with chat(chat_host, "visitor-1") as ws:
        first = await say(ws, "Hello", client_message_id="m-1")
        await say(ws, "Hello", client_message_id="m-1")
        acks = [await next_frame(ws), await next_frame(ws)]
        await say(ws, "Still there?")
        last = await next_frame(ws)

    assert [a["type"] for a in acks] == ["ack", "ack"]
    assert acks[0]["event_id"] == acks[1]["event_id"] == str(message_event_id("visitor-1", first))
    assert last["type"] == "ack"
    events = await gateway.inbound(2)
    assert [e.content.text for e in events] == ["Hello", "Still there?"]


async def test_after_identify_messages_carry_email_and_phone_on_later_visits_too(
    gateway: Any, chat_host: str
) -> None:
    async with chat(chat_host, "visitor-2") as ws:
        await ws.send(
            json.dumps({"type": "identify", "email": "ana@example.com", "phone": "+15550102345"})
        )
        identified = await next_frame(ws)
        await say(ws, "Please call me back")
        assert (await next_frame(ws))["type"] == "ack"
    # A new connection of the same visitor: the identifiers were remembered in Redis.
    async with chat(chat_host, "visitor-2") as ws:
        await say(ws, "Me again")
        assert (await next_frame(ws))["type"] == "ack"

    assert identified == {"type": "identified", "email": "ana@example.com", "phone": "+15550102345"}
    events = await gateway.inbound(2)
    for event in events:
        assert [(i.kind, i.value) for i in event.identifiers] == [
            (IdentifierKind.CHAT_VISITOR, "visitor-2"),
            (IdentifierKind.EMAIL, "ana@example.com"),
            (IdentifierKind.PHONE, "+15550102345"),
        ]
    stored = await gateway.context.redis.hgetall(keys(gateway, "visitor-2").profile)
    assert stored == {b"email": b"ana@example.com", b"phone": b"+15550102345"}


async def test_an_identify_that_is_not_an_address_is_answered_with_the_reason(
    chat_host: str,
) -> None:
    async with chat(chat_host, "visitor-2") as ws:
        await ws.send(json.dumps({"type": "identify", "email": "not-an-address"}))
        error = await next_frame(ws)

    assert error == {
        "type": "error",
        "client_message_id": None,
        "reason": "that e-mail address does not look right",
        "retryable": False,
    }


async def test_a_published_reply_reaches_every_open_tab_of_the_visitor(
    gateway: Any, chat_host: str
) -> None:
    redis_client = gateway.context.redis
    channel = keys(gateway, "visitor-3").channel
    async with chat(chat_host, "visitor-3") as tab1, chat(chat_host, "visitor-3") as tab2:
        await subscribed(redis_client, channel, count=2)
        assert await redis_client.publish(channel, reply("It ships today.")) == 2
        frames = [await next_frame(tab1), await next_frame(tab2)]

    for frame in frames:
        assert frame["type"] == "message"
        assert frame["text"] == "It ships today."
        assert frame["agent_id"] == "agent-7"


async def test_replies_waiting_while_offline_are_delivered_in_order_on_connect(
    gateway: Any, chat_host: str
) -> None:
    redis_client = gateway.context.redis
    pending = keys(gateway, "visitor-4").pending
    await redis_client.rpush(pending, reply("First"), reply("Second"))

    async with chat(chat_host, "visitor-4") as ws:
        texts = [(await next_frame(ws))["text"], (await next_frame(ws))["text"]]

    assert texts == ["First", "Second"]
    assert await redis_client.llen(pending) == 0


async def test_an_invalid_frame_is_answered_dead_lettered_and_the_socket_stays_usable(
    gateway: Any, chat_host: str
) -> None:
    async with chat(chat_host, "visitor-5") as ws:
        await ws.send("{this is not json")
        error = await next_frame(ws)
        await say(ws, "Sorry, my widget hiccupped")
        ack = await next_frame(ws)

    assert error == {
        "type": "error",
        "client_message_id": None,
        "reason": "frame is not valid JSON",
        "retryable": False,
    }
    assert ack["type"] == "ack"
    [letter] = await gateway.dead_letters(1)
    assert letter.stage == "ingress"
    assert letter.reason == "frame is not valid JSON"
    assert letter.original_value() == b"{this is not json"
    assert letter.headers == {"provider": "webchat", "tenant": "default"}
    [event] = await gateway.inbound(1)
    assert event.content.text == "Sorry, my widget hiccupped"


async def test_a_message_past_the_text_limit_is_refused_and_not_published(
    gateway: Any, chat_host: str
) -> None:
    async with chat(chat_host, "visitor-6") as ws:
        too_long = await say(ws, "x" * (MAX_TEXT_CHARS + 1))
        error = await next_frame(ws)
        await say(ws, "short")
        ack = await next_frame(ws)

    assert error == {
        "type": "error",
        "client_message_id": too_long,
        "reason": f"message longer than {MAX_TEXT_CHARS} characters",
        "retryable": False,
    }
    assert ack["type"] == "ack"
    # Messages of one socket are handled in order: once "short" is on the topic, anything the
    # long one had produced would be there too.
    [event] = await gateway.inbound(1)
    assert event.content.text == "short"


@pytest.mark.parametrize(
    "query", ["visitor_id=", "visitor_id=has%20space", "visitor_id=ok&tenant=Not-Valid", ""]
)
async def test_a_socket_with_a_malformed_visitor_or_tenant_is_refused(
    chat_host: str, query: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{chat_host}/chat/ws?{query}"):
            pass
    assert refused.value.response.status_code == 403


async def test_only_configured_origins_may_open_the_chat_when_a_list_is_set(
    gateway: Any,
) -> None:
    ingress = gateway.settings.ingress.model_copy(
        update={"webchat_allowed_origins": ("https://shop.example.com",)}
    )
    settings = gateway.settings.model_copy(update={"ingress": ingress})
    with served_gateway(settings) as host:
        url = f"ws://{host}/chat/ws?visitor_id=visitor-7"
        async with connect(url, origin=Origin("https://shop.example.com")) as ws:
            await say(ws, "From the shop")
            assert (await next_frame(ws))["type"] == "ack"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=Origin("https://elsewhere.example.net")):
                pass
    assert refused.value.response.status_code == 403


async def test_the_widget_script_and_the_demo_page_are_served(gateway: Any) -> None:
    script = await gateway.client.get("/chat/widget.js")
    demo = await gateway.client.get("/chat/demo")

    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "omnirouter.chat.visitorId" in script.text
    assert demo.status_code == 200
    assert demo.headers["content-type"].startswith("text/html")
    assert '<script src="/chat/widget.js" data-tenant="default" async></script>' in demo.text
