"""The /ops dashboard in a real browser, on the whole running router with live traffic: an
operator signs in with the token and sees consumer groups with their status and the pipeline's
throughput, read from the worker's /metrics and the lag monitor."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from omnirouter.channels.twilio.signature import twilio_signature
from support.browser import LAUNCH
from support.full_stack import ADMIN_TOKEN, INBOUND_TWILIO_TOKEN, SMS_FROM, RunningRouter

pytestmark = pytest.mark.integration

# Generous: the first lag sample connects an admin client; rates need two metric samples.
UI_TIMEOUT_MS = 60_000
STATUSES = re.compile(r"^(OK|WARN|STALL|STOP|REWIND|ERR)$")
NON_ZERO = re.compile(r"^(?!0$|0\.0+$)\d")  # a rate as the page prints it, above zero


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/ at the repository root (git-ignored), for screenshots."""
    folder = request.config.rootpath / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser(router: RunningRouter) -> Iterator[Browser]:
    """Debian's headless Chromium, closed before the router stops."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**LAUNCH)
        try:
            yield browser
        finally:
            browser.close()


def send_sms(router: RunningRouter, sender: str, text: str) -> None:
    """One customer SMS, as Twilio signs and posts it (a new message id each time)."""
    fields = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": sender,
        "To": SMS_FROM,
        "Body": text,
    }
    url = f"{router.base_url}/webhooks/twilio/messages"
    answer = httpx.post(
        url,
        content=urlencode(fields),
        timeout=30,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(INBOUND_TWILIO_TOKEN, url, fields.items()),
        },
    )
    assert answer.status_code == 200, answer.text


def test_an_operator_sees_group_status_and_live_throughput(
    router: RunningRouter, browser: Browser, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page.goto(f"{router.base_url}/ops")
        # The page is open; its data is not: it asks for the operator token first.
        expect(page.locator("#token-form")).to_be_visible()
        page.fill("#token", "not-the-token")
        page.click("#token-form button[type=submit]")
        expect(page.locator("#token-error")).to_have_text("That token was not accepted.")
        page.fill("#token", ADMIN_TOKEN)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#dashboard")).to_be_visible()

        for n in range(6):
            send_sms(router, f"+1555010{2300 + n % 3}", f"Where is parcel {n}?")

        badge = page.locator("[data-testid=group-status]").first
        expect(badge).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(badge).to_have_text(STATUSES)
        expect(page.locator("[data-testid=throughput-total]")).to_have_text(NON_ZERO)
        # The workers' stages: their counters come from the worker process's /metrics.
        for stage in ("ingress", "identity", "cases"):
            expect(page.locator(f"[data-testid=throughput-{stage}]")).to_have_text(NON_ZERO)
        expect(page.locator("#status")).to_contain_text("worker: ok")
        expect(page.locator("#chart-throughput")).not_to_have_attribute("aria-label", "no data yet")
        expect(page.locator("#chart-lag")).not_to_have_attribute("aria-label", "no data yet")

        # The token is kept for the tab: a reload shows the dashboard without asking again.
        page.reload()
        expect(page.locator("#dashboard")).to_be_visible()
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator("[data-testid=group-status]").first).to_be_visible()
        page.screenshot(path=str(artifacts / "ops-dashboard.png"), full_page=True)
    finally:
        context.close()
