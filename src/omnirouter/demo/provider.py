"""A local stand-in for the SMS/WhatsApp provider `make run` delivers replies to.

It answers Twilio's Messages API (so the real dispatcher code path runs), keeps what it was
sent, and shows it at ``/outbox`` — where a newcomer sees their reply arrive.
"""

from __future__ import annotations

import html
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_AUTH_TOKEN = "demo-provider-token"  # noqa: S105 - a local fake provider, not a credential


def create_provider_app(outbox: deque[dict[str, Any]]) -> FastAPI:
    """Twilio's Messages endpoint and an outbox page, recording into ``outbox``."""
    app = FastAPI(title="omnirouter demo provider", docs_url=None, redoc_url=None)

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def send(sid: str, request: Request) -> JSONResponse:
        form = await request.form()
        message_sid = "SM" + uuid.uuid4().hex
        outbox.appendleft(
            {
                "sid": message_sid,
                "to": str(form.get("To", "")),
                "from": str(form.get("From", "")),
                "body": str(form.get("Body", "")),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return JSONResponse({"sid": message_sid, "status": "queued"}, status_code=201)

    @app.get("/outbox", response_class=HTMLResponse)
    async def page() -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m['at'])}</td><td>{html.escape(m['to'])}</td>"
            f"<td>{html.escape(m['body'])}</td></tr>"
            for m in outbox
        )
        return (
            "<!doctype html><meta charset=utf-8><title>Demo provider outbox</title>"
            "<meta http-equiv=refresh content=3><h1>Messages delivered by the demo provider</h1>"
            "<table border=1 cellpadding=4><tr><th>at</th><th>to</th><th>message</th></tr>"
            f"{rows}</table>"
        )

    @app.get("/outbox.json")
    async def outbox_json() -> list[dict[str, Any]]:
        return list(outbox)

    return app


class DemoProvider:
    """The demo provider served in a background thread."""

    def __init__(self, port: int) -> None:
        """Serve on 127.0.0.1:``port``."""
        self.port = port
        self.outbox: deque[dict[str, Any]] = deque(maxlen=500)
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
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
