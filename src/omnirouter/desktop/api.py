"""The desktop's JSON API (under /desk/api) and live updates (server-sent events).

Authentication: a session token from ``POST /desk/api/login``, sent as the ``omni_desk``
cookie (browsers) or ``Authorization: Bearer <token>`` (custom desktops, the Python client).
Authorization: an agent sees the queues they serve and the cases in them, or offered or
assigned to them; a supervisor sees everything — always of their own tenant only (the
session's): queue and agent ids repeat across tenants, and every lookup and live notice is
scoped by the session's tenant, so another tenant's case id answers 404. Missing credentials
answer 401, a queue outside the agent's queues 403, and a case they may not see 404 — the same
answer as for a case that does not exist, so that its existence is not confirmed.
"""

# No "from __future__ import annotations" here: FastAPI must see the dependency annotations
# of the nested route functions as objects, not as strings it cannot resolve.

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from omnirouter.desktop.accounts import Accounts, Session
from omnirouter.desktop.live import LiveFeed, Notice
from omnirouter.desktop.service import DeskService, Forbidden
from omnirouter.events import (
    DEFAULT_TENANT,
    AgentActionKind,
    CaseContext,
    CaseSnapshot,
    Channel,
    TimelineEntry,
)
from omnirouter.pipeline.cases.operations import CaseChangeRefused, CaseNotFound
from omnirouter.pipeline.routing.engine import OfferRefused

COOKIE = "omni_desk"


class Login(BaseModel):
    """Credentials."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=500)
    tenant: str = Field(default=DEFAULT_TENANT, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ReplyBody(BaseModel):
    """A reply to the customer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)
    channel: Channel | None = None


class NoteBody(BaseModel):
    """An internal note."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class TransferBody(BaseModel):
    """Where to hand the case."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = None
    queue: str | None = None


class ResolveBody(BaseModel):
    """Why the case is resolved."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="resolved by agent", max_length=500)


class PresenceBody(BaseModel):
    """A presence change."""

    model_config = ConfigDict(extra="forbid")

    presence: Literal["available", "busy", "away", "offline"]


class CaseResponse(BaseModel):
    """A case with its context."""

    case: CaseSnapshot
    context: CaseContext


def desk_router(service: DeskService, accounts: Accounts, live: LiveFeed | None) -> APIRouter:
    """Routes under /desk/api."""
    router = APIRouter(prefix="/desk/api", tags=["desktop"])

    async def current(request: Request) -> Session:
        token = request.cookies.get(COOKIE)
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "sign in first",
                headers={"WWW-Authenticate": "Bearer"},
            )
        session = await accounts.session(token)
        if session is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "session expired or unknown",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return session

    Agent = Annotated[Session, Depends(current)]  # noqa: N806 - a type alias, named as one

    def _errors(exc: Exception) -> HTTPException:
        if isinstance(exc, Forbidden):
            return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))
        if isinstance(exc, CaseNotFound):
            return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
        if isinstance(exc, (OfferRefused, CaseChangeRefused)):
            return HTTPException(status.HTTP_409_CONFLICT, str(exc))
        if isinstance(exc, (ValueError, KeyError)):
            return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc).strip("'"))
        raise exc

    @router.post("/login")
    async def login(body: Login, response: Response) -> dict[str, str]:
        """Sign in; the token is also set as an HTTP-only cookie for the browser desktop."""
        token = await accounts.sign_in(body.agent_id, body.password, tenant=body.tenant)
        if token is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong agent id or password")
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=12 * 3600)
        session = await accounts.session(token)
        assert session is not None
        await service.record(session, AgentActionKind.SIGNED_IN)
        return {"token": token, "agent_id": body.agent_id}

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(request: Request, response: Response, agent: Agent) -> None:
        """Sign out."""
        token = request.cookies.get(COOKIE) or request.headers.get("authorization", "")[7:]
        await accounts.sign_out(token)
        response.delete_cookie(COOKIE)
        await service.record(agent, AgentActionKind.SIGNED_OUT)

    @router.get("/me")
    async def me(agent: Agent) -> dict[str, Any]:
        """Who is signed in, their role and queues."""
        account = agent.account
        state = next(
            (
                a
                for a in await service.routing.agents(tenant=agent.tenant)
                if a.agent_id == account.agent_id
            ),
            None,
        )
        return {
            "agent_id": account.agent_id,
            "name": account.name,
            "role": account.role,
            "queues": list(account.queues),
            "tenant": agent.tenant,
            "presence": state.presence if state else "offline",
        }

    @router.post("/presence", status_code=status.HTTP_204_NO_CONTENT)
    async def presence(body: PresenceBody, agent: Agent) -> None:
        """Available, busy, away or offline; becoming available brings offers."""
        await service.presence(agent, body.presence)

    @router.get("/queues")
    async def queues(agent: Agent) -> list[dict[str, Any]]:
        """The queues the agent serves, with waiting cases and SLA countdowns."""
        return [
            {
                "queue_id": q.queue_id,
                "name": q.name,
                "waiting": q.waiting,
                "sla_first_response_s": q.sla_first_response_s,
            }
            for q in await service.queues(agent)
        ]

    @router.get("/queues/{queue_id}")
    async def queue(queue_id: str, agent: Agent) -> dict[str, Any]:
        """One queue the agent serves (403 otherwise)."""
        if not agent.account.serves(queue_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{agent.account.agent_id} does not serve queue {queue_id}",
            )
        for q in await service.queues(agent):
            if q.queue_id == queue_id:
                return {"queue_id": q.queue_id, "name": q.name, "waiting": q.waiting}
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no queue {queue_id}")

    @router.get("/offers")
    async def offers(agent: Agent) -> list[dict[str, Any]]:
        """Offers waiting for this agent's answer."""
        return await service.offers(agent)

    @router.post("/offers/{case_id}/accept", status_code=status.HTTP_204_NO_CONTENT)
    async def accept(case_id: str, agent: Agent) -> None:
        """Take the offered case."""
        try:
            await service.respond(agent, case_id, accept=True)
        except Exception as exc:
            raise _errors(exc) from None

    @router.post("/offers/{case_id}/decline", status_code=status.HTTP_204_NO_CONTENT)
    async def decline(case_id: str, agent: Agent) -> None:
        """Pass the offered case to the next candidate."""
        try:
            await service.respond(agent, case_id, accept=False)
        except Exception as exc:
            raise _errors(exc) from None

    @router.get("/cases")
    async def my_cases(agent: Agent) -> list[dict[str, Any]]:
        """Cases assigned or offered to this agent ("My cases" on the desktop)."""
        return await service.my_cases(agent)

    @router.get("/transfer-targets")
    async def transfer_targets(agent: Agent) -> dict[str, list[dict[str, Any]]]:
        """Colleagues (with presence) and queues the agent may transfer a case to."""
        return await service.transfer_targets(agent, await accounts.all(tenant=agent.tenant))

    @router.get("/cases/{case_id}", response_model=CaseResponse)
    async def case(case_id: str, agent: Agent) -> CaseResponse:
        """The case with the customer's profile, timeline, story and routing history."""
        try:
            view = await service.case(agent, case_id)
        except Exception as exc:
            raise _errors(exc) from None
        return CaseResponse(case=view.case, context=view.context)

    @router.get("/cases/{case_id}/timeline", response_model=list[TimelineEntry])
    async def timeline(
        case_id: str, agent: Agent, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[TimelineEntry]:
        """The customer's whole cross-channel timeline (the case's context has the latest
        entries only), oldest first."""
        try:
            return list(await service.timeline(agent, case_id, limit=limit))
        except Exception as exc:
            raise _errors(exc) from None

    @router.post("/cases/{case_id}/reply", status_code=status.HTTP_202_ACCEPTED)
    async def reply(case_id: str, body: ReplyBody, agent: Agent) -> dict[str, str]:
        """Reply on the customer's channel (or another they can be reached on)."""
        try:
            event = await service.reply(agent, case_id, body.text, channel=body.channel)
        except Exception as exc:
            raise _errors(exc) from None
        return {"event_id": str(event.event_id), "channel": str(event.channel)}

    @router.post("/cases/{case_id}/notes", status_code=status.HTTP_204_NO_CONTENT)
    async def note(case_id: str, body: NoteBody, agent: Agent) -> None:
        """An internal note on the timeline."""
        try:
            await service.note(agent, case_id, body.text)
        except Exception as exc:
            raise _errors(exc) from None

    @router.post("/cases/{case_id}/transfer", status_code=status.HTTP_204_NO_CONTENT)
    async def transfer(case_id: str, body: TransferBody, agent: Agent) -> None:
        """Hand the case to a colleague or a queue."""
        try:
            await service.transfer(agent, case_id, to_agent=body.agent_id, to_queue=body.queue)
        except Exception as exc:
            raise _errors(exc) from None

    @router.post("/cases/{case_id}/resolve", status_code=status.HTTP_204_NO_CONTENT)
    async def resolve(case_id: str, body: ResolveBody, agent: Agent) -> None:
        """Resolve the case."""
        try:
            await service.resolve(agent, case_id, body.reason)
        except Exception as exc:
            raise _errors(exc) from None

    @router.get("/events")
    async def events(request: Request, agent: Agent) -> StreamingResponse:
        """Server-sent events: a notice whenever a case or routing decision the agent may see
        changes; the desktop refreshes what the notice names."""
        if live is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "live updates are off")
        account = agent.account

        def may_see(notice: Notice) -> bool:
            # Queue and agent ids repeat across tenants: the tenant is checked first, and a
            # notice that names none is the default tenant's, never everyone's.
            if (notice.get("tenant") or DEFAULT_TENANT) != agent.tenant:
                return False
            return (
                account.role == "supervisor"
                or notice.get("agent_id") == account.agent_id
                or account.serves(notice.get("queue"))
            )

        subscriber = live.subscribe(may_see)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        notice = await asyncio.wait_for(subscriber.queue.get(), timeout=15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"data: " + orjson.dumps(notice) + b"\n\n"
            finally:
                live.unsubscribe(subscriber)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
