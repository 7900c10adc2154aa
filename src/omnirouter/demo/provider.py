"""A local stand-in for the providers `make run` delivers replies to.

It answers Twilio's Messages API (SMS and WhatsApp) and accepts SMTP (e-mail), so the real
dispatcher code paths run; it keeps what it was sent and shows it at ``/outbox`` — where a
newcomer sees their reply arrive.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from omnirouter.errors import StackError

DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_AUTH_TOKEN = "demo-provider-token"  # noqa: S105 - a local fake provider, not a credential


def create_provider_app(outbox: deque[dict[str, Any]]) -> FastAPI:
    """Twilio's Messages endpoint and an outbox page, recording into ``outbox``."""
    app = FastAPI(title="omnirouter demo provider", docs_url=None, redoc_url=None)

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def send(sid: str, request: Request) -> JSONResponse:
        form = await request.form()
        message_sid = "SM" + uuid.uuid4().hex
        to = str(form.get("To", ""))
        outbox.appendleft(
            {
                "sid": message_sid,
                "channel": "whatsapp" if to.startswith("whatsapp:") else "sms",
                "to": to,
                "from": str(form.get("From", "")),
                "body": str(form.get("Body", "")),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return JSONResponse({"sid": message_sid, "status": "queued"}, status_code=201)

    @app.get("/outbox", response_class=HTMLResponse)
    async def page() -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m['at'])}</td><td>{html.escape(m['channel'])}</td>"
            f"<td>{html.escape(m['to'])}</td><td>{html.escape(m['body'])}</td></tr>"
            for m in outbox
        )
        return (
            "<!doctype html><meta charset=utf-8><title>Demo provider outbox</title>"
            "<meta http-equiv=refresh content=3><h1>Messages delivered by the demo provider</h1>"
            "<table border=1 cellpadding=4>"
            "<tr><th>at</th><th>channel</th><th>to</th><th>message</th></tr>"
            f"{rows}</table>"
        )

    @app.get("/outbox.json")
    async def outbox_json() -> list[dict[str, Any]]:
        return list(outbox)

    return app


class _MailSink:
    """aiosmtpd handler: every e-mail the dispatcher relays goes to the outbox."""

    def __init__(self, outbox: deque[dict[str, Any]]) -> None:
        self._outbox = outbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = message_from_bytes(content, policy=policy.default)
        body = ""
        if isinstance(message, EmailMessage):
            part = message.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
        self._outbox.appendleft(
            {
                "sid": str(message.get("Message-ID", "")),
                "channel": "email",
                "to": ", ".join(envelope.rcpt_tos),
                "from": envelope.mail_from or "",
                "subject": str(message.get("Subject", "")),
                "body": body.strip(),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return "250 Message accepted for delivery"


class DemoProvider:
    """The demo provider: its HTTP API in a background thread, its SMTP relay in another."""

    def __init__(self, port: int, smtp_port: int) -> None:
        """Serve HTTP on 127.0.0.1:``port`` and SMTP on 127.0.0.1:``smtp_port``."""
        self.port = port
        self.smtp_port = smtp_port
        self.outbox: deque[dict[str, Any]] = deque(maxlen=500)
        self._smtp = Controller(_MailSink(self.outbox), hostname="127.0.0.1", port=smtp_port)
        config = uvicorn.Config(
            create_provider_app(self.outbox),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="demo-provider", daemon=True)

    @property
    def base_url(self) -> str:
        """Where the dispatcher sends (OMNIROUTER_OUTBOUND__TWILIO_API_BASE)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start serving (returns once both servers accept connections)."""
        self._smtp.start()
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StackError(f"the demo provider did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving (whatever of it started)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._smtp.loop.is_running():
            self._smtp.stop()
