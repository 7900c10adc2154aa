"""The chat widget in a real browser: a visitor writes, Kafka has it, the agent's reply shows."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, async_playwright, expect

from omnirouter.connections import ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import Channel, IdentifierKind, InteractionEvent, topic_spec
from omnirouter.redis_keys import ChatKeys
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import IngressSettings, KafkaSettings, RedisSettings, Settings
from support.browser import LAUNCH
from support.kafka import TopicReader
from support.served_gateway import served_gateway
from support.waiting import eventually_async

pytestmark = pytest.mark.integration

UI_TIMEOUT_MS = 30_000
VISITOR_ID_KEY = "omnirouter.chat.visitorId"  # where widget.js keeps the visitor id


@pytest.fixture
def settings(stack: StackAddresses, unique_id: str, redis_prefix: str) -> Settings:
    """Settings on the session's Kafka and Redis, with topics and keys private to this test."""
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        redis=RedisSettings(url=stack.redis_url, key_prefix=redis_prefix),
        ingress=IngressSettings(),
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    return settings


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/ at the repository root (git-ignored), for screenshots."""
    folder = request.config.rootpath / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


async def inbound_webchat_event(reader: TopicReader, topic: str) -> InteractionEvent:
    def probe(r: TopicReader) -> InteractionEvent | None:
        events = [e for e in r.decoded(topic, InteractionEvent) if e.channel is Channel.WEBCHAT]
        return events[0] if events else None

    return await reader.wait_for(probe, what="the chat message on interactions.inbound")


async def visitor_socket_subscribed(redis_client: aioredis.Redis, channel: str) -> None:
    async def probe() -> bool:
        [(_, listeners)] = await redis_client.pubsub_numsub(channel)
        return int(listeners) > 0

    await eventually_async(probe, what="the widget's socket to subscribe to its replies")


async def open_chat_and_send(page: Page, text: str) -> None:
    await page.get_by_role("button", name="Chat with us").click()
    await expect(page.get_by_role("dialog", name="Chat with us")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    await page.get_by_label("Your message").fill(text)
    await page.get_by_role("button", name="Send").click()


@pytest.fixture
def gateway_host(settings: Settings) -> Iterator[str]:
    """host:port of a real server running the gateway."""
    with served_gateway(settings) as host:
        yield host


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A page in Debian's headless Chromium; the browser and Playwright's driver stop after."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**LAUNCH)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()
        assert not browser.is_connected()


@pytest.fixture
async def redis_async(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis.url or "")
    yield client
    await client.aclose()


async def test_a_visitor_writes_in_the_widget_and_reads_the_agents_reply(
    settings: Settings,
    gateway_host: str,
    page: Page,
    redis_async: aioredis.Redis,
    artifacts: Path,
) -> None:
    inbound = topic_spec("interactions.inbound").name(settings.kafka.topic_prefix)
    async with TopicReader(settings.kafka.bootstrap_servers or "", [inbound]) as reader:
        await page.goto(f"http://{gateway_host}/chat/demo")
        await open_chat_and_send(page, "Hello from the browser")

        sent = page.get_by_role("listitem").filter(has_text="Hello from the browser")
        await expect(sent).to_contain_text("Delivered", timeout=UI_TIMEOUT_MS)
        event = await inbound_webchat_event(reader, inbound)
    visitor_id = await page.evaluate("key => localStorage.getItem(key)", VISITOR_ID_KEY)
    await page.screenshot(path=artifacts / "chat-widget-sent.png")

    assert event.content.text == "Hello from the browser"
    assert (event.identifiers[0].kind, event.identifiers[0].value) == (
        IdentifierKind.CHAT_VISITOR,
        visitor_id,
    )

    # What the outbound dispatcher does when an agent answers.
    live = ChatKeys(settings.redis.key_prefix, "default", visitor_id).channel
    await visitor_socket_subscribed(redis_async, live)
    reply = {
        "type": "message",
        "event_id": str(uuid.uuid4()),
        "text": "Your parcel ships today.",
        "agent_id": "agent-7",
        "at": "2025-03-04T12:31:00+00:00",
    }
    assert await redis_async.publish(live, json.dumps(reply)) >= 1

    answer = page.get_by_role("log").get_by_text("Your parcel ships today.")
    await expect(answer).to_be_visible(timeout=UI_TIMEOUT_MS)
    await page.screenshot(path=artifacts / "chat-widget-replied.png")


async def test_an_email_left_in_the_widget_travels_with_the_next_message(
    settings: Settings, gateway_host: str, page: Page
) -> None:
    inbound = topic_spec("interactions.inbound").name(settings.kafka.topic_prefix)
    async with TopicReader(settings.kafka.bootstrap_servers or "", [inbound]) as reader:
        await page.goto(f"http://{gateway_host}/chat/demo")
        await open_chat_and_send(page, "First, hello")
        first = page.get_by_role("listitem").filter(has_text="First, hello")
        await expect(first).to_contain_text("Delivered", timeout=UI_TIMEOUT_MS)

        await page.get_by_text("Leave your e-mail or phone so we can reach you").click()
        await page.get_by_label("E-mail").fill("ana@example.com")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_text("we can reach you at ana@example.com")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        await page.get_by_label("Your message").fill("Then, my order")
        await page.get_by_role("button", name="Send").click()
        second = page.get_by_role("listitem").filter(has_text="Then, my order")
        await expect(second).to_contain_text("Delivered", timeout=UI_TIMEOUT_MS)

        def both(r: TopicReader) -> list[InteractionEvent] | None:
            events = r.decoded(inbound, InteractionEvent)
            return events if len(events) >= 2 else None

        events = await reader.wait_for(both, what="both chat messages")

    assert [[i.kind for i in e.identifiers] for e in events] == [
        [IdentifierKind.CHAT_VISITOR],
        [IdentifierKind.CHAT_VISITOR, IdentifierKind.EMAIL],
    ]
    assert events[1].identifiers[1].value == "ana@example.com"
