"""A small Python client for custom desktops (and scripts) on the desktop JSON API.

    from omnirouter.desktop.client import DeskClient

    with DeskClient("https://cx.example.com", "ava", "secret") as desk:
        desk.set_presence("available")
        for offer in desk.offers():
            desk.accept(offer["case_id"])
            case = desk.case(offer["case_id"])
            print(case["context"]["story_so_far"])
            desk.reply(offer["case_id"], "Thanks, we are on it.")

Every method raises :class:`DeskError` with the server's reason on a 4xx/5xx answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
import orjson


class DeskError(Exception):
    """The desktop API refused a request; ``status`` and the server's reason say why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class DeskClient:
    """A signed-in agent's session on the desktop API."""

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        password: str,
        *,
        tenant: str = "default",
        timeout_s: float = 30.0,
    ) -> None:
        """Sign in as ``agent_id``.

        Raises:
            DeskError: wrong credentials (401) or the server refused.
        """
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        try:
            token = self._call(
                "POST",
                "/desk/api/login",
                {"agent_id": agent_id, "password": password, "tenant": tenant},
            )["token"]
        except BaseException:
            self._http.close()  # a failed sign-in must not leave the connection open
            raise
        self._http.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self._http.request(method, path, json=body)
        if answer.status_code >= 400:
            try:
                reason = answer.json().get("detail", answer.text)
            except ValueError:
                reason = answer.text
            raise DeskError(answer.status_code, str(reason))
        return answer.json() if answer.content else None

    def me(self) -> dict[str, Any]:
        """Who is signed in: id, name, role, queues, presence."""
        return dict(self._call("GET", "/desk/api/me"))

    def set_presence(self, presence: str) -> None:
        """available, busy, away or offline."""
        self._call("POST", "/desk/api/presence", {"presence": presence})

    def queues(self) -> list[dict[str, Any]]:
        """The queues served, with their waiting cases."""
        return list(self._call("GET", "/desk/api/queues"))

    def offers(self) -> list[dict[str, Any]]:
        """Offers waiting for an answer."""
        return list(self._call("GET", "/desk/api/offers"))

    def accept(self, case_id: str) -> None:
        """Take an offered case."""
        self._call("POST", f"/desk/api/offers/{case_id}/accept")

    def decline(self, case_id: str) -> None:
        """Pass an offered case on."""
        self._call("POST", f"/desk/api/offers/{case_id}/decline")

    def case(self, case_id: str) -> dict[str, Any]:
        """The case with the customer's whole story."""
        return dict(self._call("GET", f"/desk/api/cases/{case_id}"))

    def reply(self, case_id: str, text: str, *, channel: str | None = None) -> dict[str, str]:
        """Reply on the customer's channel (or ``channel``)."""
        body: dict[str, Any] = {"text": text}
        if channel:
            body["channel"] = channel
        return dict(self._call("POST", f"/desk/api/cases/{case_id}/reply", body))

    def note(self, case_id: str, text: str) -> None:
        """An internal note."""
        self._call("POST", f"/desk/api/cases/{case_id}/notes", {"text": text})

    def transfer(
        self, case_id: str, *, agent_id: str | None = None, queue: str | None = None
    ) -> None:
        """Hand the case to a colleague or a queue."""
        self._call(
            "POST", f"/desk/api/cases/{case_id}/transfer", {"agent_id": agent_id, "queue": queue}
        )

    def resolve(self, case_id: str, reason: str = "resolved by agent") -> None:
        """Resolve the case."""
        self._call("POST", f"/desk/api/cases/{case_id}/resolve", {"reason": reason})

    def events(self) -> Iterator[dict[str, Any]]:
        """Live notices (server-sent events) until the connection closes."""
        with self._http.stream("GET", "/desk/api/events", timeout=None) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    yield orjson.loads(line[6:])

    def close(self) -> None:
        """Sign out and close the connection."""
        try:
            self._call("POST", "/desk/api/logout")
        except (DeskError, httpx.HTTPError):
            pass  # the session expires on its own
        finally:
            self._http.close()

    def __enter__(self) -> DeskClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
