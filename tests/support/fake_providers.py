"""Local stand-ins for the providers replies go out through: Twilio, Meta and an SMTP relay.

``FakeProviders`` is a FastAPI app served by uvicorn in a background thread on a free loopback
port: Twilio's Messages endpoint and Meta's messages endpoint, both checking credentials the
way the real ones do, recording every request, and failing on demand. ``FakeSmtpRelay`` is a
real SMTP server (aiosmtpd) that keeps every message it accepts.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from omnirouter.devstack.network import free_port
from support.waiting import eventually

TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-token"
META_TOKEN = "meta-test-token"
META_PHONE_NUMBER_ID = "1234567890"
META_VERSION = "v20.0"


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake provider received."""

    provider: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    json: Any
    status: int
    answered_id: str | None
    """The message id the provider answered with (None when it failed the request)."""


@dataclass
class _Failures:
    remaining: int = 0
    status: int = 503


@dataclass
class FakeProviders:
    """Twilio's and Meta's send endpoints on ``base_url``, recording what they are sent."""

    requests: list[RecordedRequest] = field(default_factory=list)
    base_url: str = ""
    _failures: _Failures = field(default_factory=_Failures)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def twilio_api_base(self) -> str:
        return self.base_url

    @property
    def meta_api_base(self) -> str:
        return f"{self.base_url}/{META_VERSION}"

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """Answer the next ``count`` requests (to either provider) with ``status``."""
        with self._lock:
            self._failures = _Failures(count, status)

    def sent_to(self, provider: str) -> list[RecordedRequest]:
        """The requests ``provider`` received, in order."""
        with self._lock:
            return [r for r in self.requests if r.provider == provider]

    def _answer(
        self, provider: str, request: Request, form: Any, body: Any, *, ok: int, message_id: str
    ) -> int:
        with self._lock:
            status = ok
            if self._failures.remaining > 0:
                self._failures.remaining -= 1
                status = self._failures.status
            self.requests.append(
                RecordedRequest(
                    provider=provider,
                    path=request.url.path,
                    headers=dict(request.headers),
                    form={k: form.getlist(k) for k in form} if form is not None else {},
                    json=body,
                    status=status,
                    answered_id=message_id if status == ok else None,
                )
            )
            return status

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
        async def twilio_messages(sid: str, request: Request) -> JSONResponse:
            expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
            if sid != TWILIO_SID or request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
            form = await request.form()
            message_sid = f"SM{uuid.uuid4().hex}"
            status = self._answer("twilio", request, form, None, ok=201, message_id=message_sid)
            if status != 201:
                return JSONResponse({"code": 20500, "message": "failing"}, status_code=status)
            return JSONResponse({"sid": message_sid, "status": "queued"}, 201)

        @app.post(f"/{META_VERSION}/{{number_id}}/messages")
        async def meta_messages(number_id: str, request: Request) -> JSONResponse:
            if (
                number_id != META_PHONE_NUMBER_ID
                or request.headers.get("authorization") != f"Bearer {META_TOKEN}"
            ):
                return JSONResponse({"error": {"code": 190, "message": "bad token"}}, 401)
            body = await request.json()
            wamid = f"wamid.{uuid.uuid4().hex}"
            status = self._answer("meta", request, None, body, ok=200, message_id=wamid)
            if status != 200:
                return JSONResponse({"error": {"code": 131000, "message": "failing"}}, status)
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                    "messages": [{"id": wamid}],
                }
            )

        return app


@contextlib.contextmanager
def serve_fake_providers(*, attempts: int = 5) -> Iterator[FakeProviders]:
    """Serve :class:`FakeProviders` until the block ends, then stop and join its thread.

    A port taken between ``free_port`` and the bind is retried on a new port.
    """
    fakes = FakeProviders()
    for _ in range(attempts):
        port = free_port()
        config = uvicorn.Config(
            fakes.app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"fake-providers-{port}", daemon=True)
        thread.start()
        with contextlib.suppress(AssertionError):  # not started in time: try another port
            eventually(
                lambda: server.started or not thread.is_alive(),  # noqa: B023 - used at once
                timeout_s=10,
                what="the fake providers to listen",
            )
        if server.started:
            break
        server.should_exit = True
        thread.join(timeout=10)
    else:
        raise RuntimeError(f"the fake providers did not start in {attempts} attempts")
    fakes.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fakes
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError("the fake providers' server thread did not stop")


@dataclass(frozen=True)
class ReceivedMail:
    """One message the relay accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _RecordingHandler:
    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self._lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(
                ReceivedMail(envelope.mail_from or "", list(envelope.rcpt_tos), message)
            )
        return "250 Message accepted for delivery"


class _EphemeralPortController(Controller):
    """aiosmtpd's Controller on port 0: learns the port the OS chose before its self-test."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class FakeSmtpRelay:
    """A real SMTP server on 127.0.0.1, keeping what it receives."""

    host: str
    port: int
    _handler: _RecordingHandler

    @property
    def received(self) -> list[ReceivedMail]:
        with self._handler._lock:
            return list(self._handler.received)


@contextlib.contextmanager
def serve_smtp_relay() -> Iterator[FakeSmtpRelay]:
    """Run an SMTP relay on an ephemeral loopback port until the block ends."""
    handler = _RecordingHandler()
    controller = _EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield FakeSmtpRelay("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()
