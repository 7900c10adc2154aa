"""`omnirouter run` as a newcomer meets it: one command, then a demo agent takes a simulated
customer's case in the browser, replies, and sees the reply delivered and on the timeline; the
malformed demo payloads show in the ops dashboard's dead letters; Ctrl-C leaves nothing running.

The screenshots this test takes are the README's (copied to docs/screenshots/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from support.browser import LAUNCH, UI_TIMEOUT_MS, Desk
from support.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class Banner:
    """What `omnirouter run` printed: where things are, and who may sign in."""

    lines: list[str]

    def value(self, label: str, index: int = 1) -> str:
        line = next(line for line in self.lines if line.strip().startswith(label))
        return line.split()[index]

    @property
    def base_url(self) -> str:
        return self.value("api ")

    def agents(self) -> dict[str, str]:
        """Demo agents' passwords by agent id ("demo agent  alex / 1a2b3c4d  (…)")."""
        found = {}
        for line in self.lines:
            if line.strip().startswith("demo agent"):
                _, _, agent_id, _, password, *_ = line.split()
                found[agent_id] = password
        return found


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`omnirouter run` with its own devstack, free ports and a brisk demo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env |= {
        "OMNIROUTER_API__PORT": "0",
        "OMNIROUTER_OPS__WORKER_METRICS_PORT": "0",
        "OMNIROUTER_INGRESS__SMTP_PORT": "0",
        "OMNIROUTER_DEMO__INTERVAL_S": "0.5",
        "OMNIROUTER_OPS__LAG_SAMPLE_INTERVAL_S": "1",
        "OMNIROUTER_LOG__FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "omnirouter.cli", "run", "--state-dir", str(tmp_path / "state")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        reader.join(timeout=10)
        process.stdout.close()


def test_a_newcomer_runs_the_router_and_answers_a_demo_customer_in_the_browser(
    running: tuple[subprocess.Popen[str], list[str]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    process, lines = running
    eventually(
        lambda: any("Press Ctrl-C" in line for line in lines) or process.poll() is not None,
        timeout_s=240,
        what="omnirouter run to print its URLs",
    )
    output = "".join(lines)
    assert process.poll() is None, output
    # Progress while starting, then the banner.
    assert "… starting devstack" in output
    assert "… starting the demo simulator" in output
    banner = Banner([line for line in lines if not line.startswith("{")])
    base = banner.base_url
    assert banner.value("desktop") == f"{base}/desk"
    assert banner.value("chat") == f"{base}/chat/demo"
    assert banner.value("ops") == f"{base}/ops"
    assert banner.value("metrics") == f"{base}/metrics"
    outbox = next(line for line in banner.lines if "replies are delivered to" in line).split()[-1]
    token = banner.value("operator token", 2)
    agents = banner.agents()
    assert set(agents) == {"alex", "sam"}
    for url in (f"{base}/chat/demo", f"{base}/metrics", outbox):
        assert httpx.get(url, timeout=10).status_code == 200, url
    run_pid = process.pid
    descendants = _descendants(run_pid)
    assert descendants, "omnirouter run started no processes"

    def rejected_by_the_gateway() -> int:
        summary = httpx.get(
            f"{base}/ops/api/summary", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        return sum(d["total"] for d in summary["dead_letters"] if d["stage"] == "ingress")

    # Two malformed payloads end the simulator's first round: by then every demo customer has
    # written by e-mail, SMS and chat, and the cross-channel merges are done.
    eventually(
        lambda: rejected_by_the_gateway() >= 2,
        timeout_s=120,
        what="the demo's malformed payloads in the dead letters",
    )

    artifacts = request.config.rootpath / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    reply = f"Sorry for the wait — it is sorted now ({uuid.uuid4().hex[:6]})."
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**LAUNCH)
        try:
            desk = Desk(browser, banner).sign_in("alex", agents["alex"])
            desk.set_presence("available")
            offer = desk.list_named("Offers").get_by_role("listitem").first
            expect(offer).to_be_visible(timeout=UI_TIMEOUT_MS)
            offer.get_by_role("button", name="Accept").click()
            expect(desk.timeline.locator('li[data-kind="message"]').first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            # Reply on the channel of the case's first message (e-mail or SMS: both go to the
            # demo provider), to the address the customer wrote from.
            channel = desk.page.get_by_label("Channel")
            first_option = channel.locator("option").first
            kind = first_option.get_attribute("value")
            address = first_option.inner_text().split("·")[-1].strip()
            channel.select_option(kind)
            desk.page.get_by_label("Reply to the customer").fill(reply)
            desk.page.get_by_role("button", name="Send reply").click()
            expect(desk.action_status()).to_contain_text("Reply sent", timeout=UI_TIMEOUT_MS)
            delivered = eventually(
                lambda: [
                    m for m in httpx.get(f"{outbox}.json", timeout=10).json() if reply in m["body"]
                ],
                timeout_s=60,
                what="the reply at the demo provider",
            )
            assert len(delivered) == 1
            assert address in delivered[0]["to"]
            desk.shows(reply)
            expect(desk.entry(reply)).to_contain_text("Agent alex")
            desk.page.screenshot(path=str(artifacts / "readme-desk.png"))
            desk.close()

            ops = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            ops.set_default_timeout(60_000)
            ops.goto(f"{base}/ops")
            ops.fill("#token", token)
            ops.click("#token-form button[type=submit]")
            expect(ops.locator("#dashboard")).to_be_visible()
            # The simulator's malformed payloads, visible to an operator with their reason.
            dead = ops.locator("#dead-letters tbody tr").filter(has_text="Unnormalizable")
            expect(dead).to_contain_text("ingress")
            expect(ops.locator("[data-testid=group-status]").first).to_be_visible()
            ops.screenshot(path=str(artifacts / "readme-ops.png"), full_page=True)
            ops.context.close()
        finally:
            browser.close()

    state = json.loads((tmp_path / "state" / "state.json").read_text())
    servers = [state["kafka"]["pid"], state["redis"]["pid"]]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0, "".join(lines)[-3000:]
    assert "omnirouter stopped" in "".join(lines)
    left = [pid for pid in {*descendants, *servers} if _alive(pid)]
    assert not left, f"still running after Ctrl-C: {left}"
