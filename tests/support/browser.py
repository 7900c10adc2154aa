"""Debian's headless Chromium for the browser tests, and an agent's desk driven through it.

Browser downloads (`playwright install`) fail on our machines: the tests launch the Chromium
Debian ships (installed by `make browser-deps`) with the flags a container without a GPU or a
session bus needs.
"""

from __future__ import annotations

from typing import Any, Protocol

from playwright.sync_api import Browser, Locator, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH: dict[str, Any] = {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
"""Keyword arguments for ``playwright.chromium.launch`` (sync and async APIs alike)."""

# Generous: a message crosses ingress, identity, cases and routing workers before it shows.
UI_TIMEOUT_MS = 30_000


class Served(Protocol):
    """Anything that says where the router's HTTP server listens."""

    @property
    def base_url(self) -> str: ...


class Desk:
    """One agent's desk in its own browser context (own cookies, own session)."""

    def __init__(self, browser: Browser, router: Served) -> None:
        self.context = browser.new_context(
            base_url=router.base_url, viewport={"width": 1440, "height": 1100}
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.base_url = router.base_url

    def sign_in(self, agent_id: str, password: str) -> Desk:
        page = self.page
        page.goto("/desk/login")
        page.get_by_label("Agent ID").fill(agent_id)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{self.base_url}/desk", timeout=UI_TIMEOUT_MS)
        # The live stream is open: whatever happens from here on reaches this desk.
        expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        return self

    def set_presence(self, presence: str) -> None:
        with self.page.expect_response(lambda r: r.url.endswith("/desk/api/presence")) as answer:
            self.page.get_by_label("Presence").select_option(presence)
        assert answer.value.status == 204

    @property
    def timeline(self) -> Locator:
        return self.page.get_by_role("log", name="Timeline")

    def entry(self, text: str) -> Locator:
        return self.timeline.get_by_role("listitem").filter(has_text=text)

    def shows(self, text: str) -> None:
        expect(self.entry(text)).to_be_visible(timeout=UI_TIMEOUT_MS)

    def list_named(self, name: str) -> Locator:
        return self.page.get_by_role("list", name=name, exact=True)

    def action_status(self) -> Locator:
        return self.page.locator("#action-status")

    def seen(self) -> dict[str, object]:
        """What the agent reads on the open case: entry texts by kind, and the story."""
        entries = {
            "message": 'li[data-kind="message"]',
            "reply": 'li[data-kind="reply"]',
            "note": 'li[data-system-type="note"]',
        }
        texts = {
            kind: self.timeline.locator(f"{selector} .entry-text").all_inner_texts()
            for kind, selector in entries.items()
        }
        return {**texts, "story": self.page.locator("#story").inner_text()}

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
