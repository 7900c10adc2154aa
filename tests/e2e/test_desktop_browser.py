"""The agent desk in a real browser, on the whole running router: two agents, one customer who
writes by e-mail and then by SMS, a reply that reaches the SMS provider, a note, a transfer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from integration.desktop.test_desk_api import send_email, send_sms
from support.browser import LAUNCH, UI_TIMEOUT_MS, Desk
from support.fake_providers import FakeProviders
from support.full_stack import ADMIN_TOKEN, RunningRouter
from support.waiting import eventually

pytestmark = pytest.mark.integration

# A message to the open case shows within a second of the pipeline's notice, without a reload;
# the rest of the margin is for the pipeline itself on a busy machine.
LIVE_TIMEOUT_MS = 5_000
NOTE = "Courier says Tuesday <b>(not Monday)</b>"  # markup an agent typed shows as typed


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/ at the repository root (git-ignored), for screenshots."""
    folder = request.config.rootpath / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser(router: RunningRouter) -> Iterator[Browser]:
    """Debian's headless Chromium; closed (with its pages' event streams) before the router
    stops, so the server never waits on a browser connection at shutdown."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**LAUNCH)
        try:
            yield browser
        finally:
            browser.close()
        assert not browser.is_connected()


def import_known_customer(router: RunningRouter) -> None:
    """Ana, known by e-mail and phone (the admin import), before she writes."""
    answer = httpx.post(
        f"{router.base_url}/api/identity/customers",
        json={
            "identifiers": [
                {"kind": "email", "value": "ana@example.com"},
                {"kind": "phone", "value": "+15550102345"},
            ]
        },
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_an_agent_takes_the_case_in_the_browser_and_a_colleague_sees_the_same_story(
    router: RunningRouter, providers: FakeProviders, browser: Browser, artifacts: Path
) -> None:
    router.add_agent("ava", "ava-secret", queues="general", name="Ava Moreno")
    router.add_agent("ben", "ben-secret", queues="general", name="Ben Okafor")
    import_known_customer(router)

    ava = Desk(browser, router).sign_in("ava", "ava-secret")
    ben = Desk(browser, router).sign_in("ben", "ben-secret")
    expect(ava.page.get_by_role("banner")).to_contain_text("Ava Moreno")
    ben.set_presence("away")  # so the offer can only go to ava

    # Nobody is available yet: the case waits in the queue, with its SLA counting down.
    send_email(router, "Parcel", "My parcel never arrived.")
    general = ava.page.locator('section[data-queue-id="general"]')
    expect(general.get_by_role("listitem")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(general).to_contain_text("1 waiting")
    expect(general.locator(".sla")).to_contain_text("left")

    ava.set_presence("available")  # brings ava the waiting case as an offer
    offer = ava.list_named("Offers").get_by_role("listitem")
    expect(offer).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(general.get_by_role("listitem")).to_have_count(0)
    expect(offer).to_contain_text("Expires in")
    offer.get_by_role("button", name="Accept").click()

    ava.shows("My parcel never arrived.")
    expect(ava.list_named("My cases").get_by_role("button")).to_have_count(1)
    ava.page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    assert send_sms(router, "Any news about the parcel?").status_code == 200
    expect(ava.entry("Any news about the parcel?")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert ava.page.evaluate("window.__sameDocument === true"), "the desk reloaded"
    messages = ava.timeline.locator('li[data-kind="message"]')
    expect(messages).to_have_count(2)
    expect(messages.nth(0)).to_contain_text("E-mail")
    expect(messages.nth(1)).to_contain_text("SMS")
    expect(ava.page.locator("#story")).to_contain_text("Any news about the parcel?")
    ava.page.screenshot(path=artifacts / "desk-ava-before-reply.png")

    channel = ava.page.get_by_label("Channel")
    expect(channel).to_have_value("sms")  # the customer's latest channel
    assert channel.locator("option").all_inner_texts() == [
        "E-mail · ana@example.com",
        "SMS · +15550102345",
        "WhatsApp · +15550102345",
        "Voice · +15550102345",
    ]
    channel.select_option("sms")
    ava.page.get_by_label("Reply to the customer").fill("It is on its way, Ana.")
    ava.page.get_by_role("button", name="Send reply").click()
    expect(ava.action_status()).to_have_text("Reply sent by SMS.", timeout=UI_TIMEOUT_MS)
    delivered = eventually(
        lambda: providers.sent_to("twilio"), timeout_s=60, what="the SMS at the provider"
    )
    assert delivered[0].form["Body"] == ["It is on its way, Ana."]
    assert delivered[0].form["To"] == ["+15550102345"]
    ava.shows("It is on its way, Ana.")
    expect(ava.entry("It is on its way, Ana.")).to_contain_text("Agent ava")
    ava.page.screenshot(path=artifacts / "desk-ava-after-reply.png")

    ava.page.get_by_label("Internal note").fill(NOTE)
    ava.page.get_by_role("button", name="Add note").click()
    ava.shows(NOTE)
    expect(ava.entry(NOTE)).to_contain_text("internal")
    expect(ava.timeline.locator("b")).to_have_count(0)
    seen_by_ava = ava.seen()

    ava.page.get_by_label("To a colleague (agent ID)").fill("ben")
    ava.page.get_by_role("button", name="Transfer").click()
    expect(ava.action_status()).to_have_text("Transferred to ben.", timeout=UI_TIMEOUT_MS)
    expect(ava.list_named("My cases").get_by_role("button")).to_have_count(0)

    for_ben = ben.list_named("My cases").get_by_role("button")
    expect(for_ben).to_have_count(1, timeout=UI_TIMEOUT_MS)
    for_ben.click()
    ben.shows(NOTE)
    expect(ben.page.locator("#status-now")).to_contain_text("ben")
    expect(ben.page.locator("#status-history")).to_contain_text("transferred by ava")
    expect(ben.entry(NOTE)).to_contain_text("internal")
    seen_by_ben = ben.seen()
    assert seen_by_ben == seen_by_ava
    assert seen_by_ben["message"] == ["My parcel never arrived.", "Any news about the parcel?"]
    assert seen_by_ben["reply"] == ["It is on its way, Ana."]
    assert seen_by_ben["note"] == [NOTE]
    assert seen_by_ben["story"]
    ben.page.screenshot(path=artifacts / "desk-ben-after-transfer.png")

    ava.close()
    ben.close()


def test_the_desk_without_a_session_sends_the_visitor_to_sign_in(
    router: RunningRouter, browser: Browser
) -> None:
    desk = Desk(browser, router)
    desk.page.goto("/desk")
    expect(desk.page).to_have_url(f"{router.base_url}/desk/login", timeout=UI_TIMEOUT_MS)
    expect(desk.page.get_by_role("heading", name="Sign in")).to_be_visible()

    desk.page.get_by_label("Agent ID").fill("nobody")
    desk.page.get_by_label("Password").fill("not-a-password")
    desk.page.get_by_role("button", name="Sign in").click()
    expect(desk.page.get_by_role("alert")).to_have_text("Wrong agent ID or password.")
    expect(desk.page).to_have_url(f"{router.base_url}/desk/login")
    desk.close()
