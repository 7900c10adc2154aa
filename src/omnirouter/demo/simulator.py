"""Demo customers at a gentle rate: e-mail, then SMS, then chat; VIPs; merges; some garbage.

The simulator talks to the router only the way real providers do — signed Twilio webhooks, SMTP
and the signed JSON endpoint — so everything a newcomer sees went through the real gateway,
identity, cases and routing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import smtplib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlencode

import httpx

from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.logs import get_logger

log = get_logger(__name__)

PEOPLE = [
    ("Ana Silva", "ana.silva@example.com", "+15550100101", None),
    ("Ben Okafor", "ben.okafor@example.com", "+15550100102", "vip"),
    ("Chloé Martin", "chloe@example.fr", "+33612345678", None),
    ("Dev Patel", "dev.patel@example.com", "+15550100104", None),
    ("Eva Novak", "eva.novak@example.com", "+15550100105", "vip"),
    ("Femi Adeyemi", "femi@example.com", "+15550100106", None),
]
STORIES = [
    (
        "Where is my parcel?",
        "Hi, my parcel was due on Monday and never arrived. Order 1182.",
        "Still no parcel, any news?",
        "Third time asking: where is order 1182?",
    ),
    (
        "Charged twice",
        "I was charged twice for my last invoice, please refund one.",
        "Did you see my e-mail about the double charge?",
        "Can someone look at the refund today?",
    ),
    (
        "Cannot log in",
        "I can't log in, the password reset link is broken.",
        "Reset link still broken",
        "I'm locked out of my account, please help",
    ),
    (
        "Cancel subscription",
        "Please cancel my subscription at the end of the month.",
        "Just checking you got my cancellation",
        "I want to cancel, who can help?",
    ),
]


@dataclass(frozen=True)
class DemoTargets:
    """Where and how to reach the router as providers would."""

    base_url: str
    smtp_port: int | None  # None: the SMTP listener is off; e-mails go through signed JSON
    # Where Twilio would have posted: the URL the gateway checks signatures against.
    webhook_base_url: str
    twilio_token: str
    signing_key_id: str
    signing_secret: str


class DemoSimulator:
    """Sends one step of a demo conversation every ``interval_s`` seconds, in a thread."""

    def __init__(self, targets: DemoTargets, *, interval_s: float = 4.0) -> None:
        """Simulate customers against ``targets``."""
        self._targets = targets
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-simulator", daemon=True)
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending (returns within one interval)."""
        self._stop.set()
        self._thread.join(timeout=self._interval + 10)

    def steps(self) -> list[Callable[[], None]]:
        """The demo script: every customer's conversation, interleaved, with some garbage."""
        steps: list[Callable[[], None]] = []
        for index, (name, email, phone, tier) in enumerate(PEOPLE):
            subject, first, second, third = STORIES[index % len(STORIES)]
            steps.append(functools.partial(self.email, name, email, subject, first))
            steps.append(functools.partial(self.sms, phone, second))
            # The chat carries both: identity links (merges) the e-mail and SMS customers.
            steps.append(functools.partial(self.signed, name, email, phone, third, tier))
            if index % 3 == 2:
                steps.append(self.garbage)
        return steps

    def _run(self) -> None:
        # The script repeats until stopped: the same people keep writing (following up on their
        # open cases), so a demo left running always has something waiting for an agent.
        while True:
            for step in self.steps():
                if self._stop.wait(self._interval):
                    return
                try:
                    step()
                    self.sent += 1
                except (OSError, httpx.HTTPError, smtplib.SMTPException) as exc:
                    self.failed += 1
                    log.warning("demo step failed", error=str(exc))

    def email(self, name: str, address: str, subject: str, text: str) -> None:
        """An e-mail through the SMTP listener (or, with the listener off, as signed JSON)."""
        if self._targets.smtp_port is None:
            self._post_signed(
                {
                    "message_id": uuid.uuid4().hex,
                    "channel": "email",
                    "display_name": name,
                    "identifiers": [{"kind": "email", "value": address}],
                    "subject": subject,
                    "text": text,
                }
            )
            return
        message = EmailMessage()
        message["From"] = f"{name} <{address}>"
        message["To"] = "support@omnirouter.invalid"
        message["Subject"] = subject
        message["Message-ID"] = f"<{uuid.uuid4().hex}@demo.example>"
        message.set_content(f"Hello,\n\n{text}\n\nBest regards,\n{name.split()[0]}")
        with smtplib.SMTP("127.0.0.1", self._targets.smtp_port, timeout=30) as smtp:
            smtp.send_message(message)

    def sms(self, phone: str, text: str) -> None:
        """An SMS through the signed Twilio webhook."""
        fields = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": phone,
            "To": "+15017122661",
            "Body": text,
            "NumMedia": "0",
        }
        path = "/webhooks/twilio/messages"
        signature = twilio_signature(
            self._targets.twilio_token, self._targets.webhook_base_url + path, fields.items()
        )
        httpx.post(
            self._targets.base_url + path,
            content=urlencode(fields),
            timeout=30,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        ).raise_for_status()

    def signed(self, name: str, email: str, phone: str, text: str, tier: str | None) -> None:
        """A web chat transcript from a partner system, signed (carries e-mail and phone)."""
        self._post_signed(
            {
                "message_id": uuid.uuid4().hex,
                "channel": "webchat",
                "display_name": name,
                "identifiers": [
                    {"kind": "email", "value": email},
                    {"kind": "phone", "value": phone},
                ],
                "text": text,
                "attributes": {"tier": tier} if tier else {},
            }
        )

    def _post_signed(self, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        digest = hmac.new(
            self._targets.signing_secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        httpx.post(
            f"{self._targets.base_url}/webhooks/signed/{self._targets.signing_key_id}",
            content=body,
            timeout=30,
            headers={
                "Content-Type": "application/json",
                "X-Omnirouter-Timestamp": timestamp,
                "X-Omnirouter-Signature": f"sha256={digest}",
            },
        ).raise_for_status()

    def garbage(self) -> None:
        """A malformed payload: a Twilio webhook without a sender (it lands in dead letters)."""
        fields = {"MessageSid": "SM" + uuid.uuid4().hex, "Body": "who am I?"}
        path = "/webhooks/twilio/messages"
        signature = twilio_signature(
            self._targets.twilio_token, self._targets.webhook_base_url + path, fields.items()
        )
        httpx.post(
            self._targets.base_url + path,
            content=urlencode(fields),
            timeout=30,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
