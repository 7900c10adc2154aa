"""What an agent can see and do, with access checked and every action recorded as an event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from omnirouter.desktop.accounts import Account, Session
from omnirouter.events import (
    AgentAction,
    AgentActionKind,
    CaseStatus,
    Channel,
    Content,
    Direction,
    InteractionEvent,
    ProviderRefs,
    TimelineEntry,
    encode,
    topic_spec,
)
from omnirouter.pipeline.cases.entries import customer_of_case, note_entry
from omnirouter.pipeline.cases.operations import (
    CaseNotFound,
    CaseOperations,
    CaseView,
    apply_and_describe,
)
from omnirouter.pipeline.cases.snapshot import case_context
from omnirouter.pipeline.identity.operations import EventPublisher
from omnirouter.pipeline.routing.engine import IDENTIFIER_FOR_CHANNEL
from omnirouter.pipeline.routing.operations import RoutingOperations
from omnirouter.pipeline.routing.requests import request_for_case


class Forbidden(PermissionError):  # noqa: N818 - maps to HTTP 403, reads as the outcome
    """The agent does not serve the queue of what they asked for."""


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue the agent serves, with its waiting cases."""

    queue_id: str
    name: str
    waiting: list[dict[str, Any]]
    sla_first_response_s: int


class DeskService:
    """The desktop's operations for one deployment."""

    def __init__(
        self,
        cases: CaseOperations,
        routing: RoutingOperations,
        publisher: EventPublisher,
        *,
        topic_prefix: str,
    ) -> None:
        """Act on cases and routing; publish replies and actions through ``publisher``."""
        self.cases = cases
        self.routing = routing
        self._publisher = publisher
        self._prefix = topic_prefix

    async def record(
        self,
        session: Session,
        action: AgentActionKind,
        *,
        case_id: str | None = None,
        customer_id: str | None = None,
        **detail: str,
    ) -> None:
        """Publish one agent action (acknowledged by Kafka)."""
        event = AgentAction(
            tenant=session.tenant,
            occurred_at=datetime.now(UTC),
            agent_id=session.account.agent_id,
            action=action,
            case_id=case_id,
            customer_id=customer_id,
            detail=detail,
        )
        await self._publish("desk.actions", session.account.agent_id, encode(event))

    async def _publish(self, topic_key: str, key: str, value: bytes) -> None:
        topic = topic_spec(topic_key).name(self._prefix)
        await asyncio.to_thread(self._publisher.publish, topic, key, value)

    async def queues(self, session: Session) -> list[QueueView]:
        """The queues the agent serves (all for a supervisor), each with its waiting cases."""
        now = datetime.now(UTC)
        views = []
        for queue in self.routing.engine.rules.queues:
            if not session.account.serves(queue.id):
                continue
            waiting = []
            for request, _ in await self.routing.waiting(queue.id, tenant=session.tenant):
                since = request.enqueued_at or now
                waited = (now - since).total_seconds()
                waiting.append(
                    {
                        "case_id": request.case_id,
                        "customer_id": request.customer_id,
                        "channel": str(request.channel),
                        "waiting_s": round(waited),
                        "sla_left_s": round(queue.sla.first_response_s - waited),
                        "tier": request.tier,
                        "intents": list(request.intents),
                    }
                )
            views.append(
                QueueView(queue.id, queue.name or queue.id, waiting, queue.sla.first_response_s)
            )
        return views

    async def offers(self, session: Session) -> list[dict[str, Any]]:
        """Open offers for this agent."""
        offers = await self.routing.engine.store.offers(session.tenant)
        mine = session.account.agent_id
        return [
            {"case_id": case_id, **o} for case_id, o in offers.items() if o.get("agent") == mine
        ]

    async def case(self, session: Session, case_id: str) -> CaseView:
        """A case the agent may see (their queue, offered or assigned to them).

        Raises:
            CaseNotFound: no such case, or one the agent may not see (the same answer).
        """
        view = await self.cases.case(case_id, tenant=session.tenant)
        await self._check(session, case_id, view.case.queue, view.case.assigned_agent_id)
        return view

    async def _check(
        self, session: Session, case_id: str, queue: str | None, agent: str | None
    ) -> None:
        account = session.account
        if account.role == "supervisor" or agent == account.agent_id or account.serves(queue):
            return
        offers = await self.routing.engine.store.offers(session.tenant)
        if offers.get(case_id, {}).get("agent") == account.agent_id:
            return
        # The same answer as for a case that does not exist: a 403 would confirm that the case
        # exists (and name its queue) to someone not entitled to know.
        raise CaseNotFound(f"no case {case_id}")

    async def timeline(
        self, session: Session, case_id: str, *, limit: int = 200
    ) -> tuple[TimelineEntry, ...]:
        """The customer's cross-channel timeline, oldest first, up to ``limit`` latest entries.

        The case's context holds only the last few entries; a desktop shows the whole story.

        Raises:
            CaseNotFound: no such case.
            Forbidden: the agent may not see the case.
        """
        view = await self.case(session, case_id)
        customer = await self.cases.customer(
            view.case.customer_id, tenant=session.tenant, timeline=limit
        )
        return customer.timeline

    async def reply(
        self, session: Session, case_id: str, text: str, *, channel: Channel | None = None
    ) -> InteractionEvent:
        """Send a reply on the customer's channel (or another one they can be reached on).

        Raises:
            ValueError: the customer has no address for that channel.
        """
        view = await self.case(session, case_id)
        last = next(
            (
                t.channel
                for t in reversed(view.context.recent_timeline)
                if t.direction == Direction.INBOUND
                and t.channel is not None
                and t.case_id == case_id
            ),
            None,
        )
        use = channel or last or (view.case.channels[-1] if view.case.channels else None)
        if use is None:
            raise ValueError("the case has no channel to reply on")
        wanted = IDENTIFIER_FOR_CHANNEL.get(use)
        to = [i for i in view.context.profile.identifiers if i.kind == wanted]
        if not to:
            raise ValueError(f"the customer has no address for {use}")
        now = datetime.now(UTC)
        reply = InteractionEvent(
            tenant=session.tenant,
            occurred_at=now,
            received_at=now,
            channel=use,
            direction=Direction.OUTBOUND,
            identifiers=(to[0],),
            content=Content(
                text=text, subject=f"Re: {view.case.subject}" if view.case.subject else None
            ),
            provider=ProviderRefs(provider="omnirouter"),
            customer_id=view.case.customer_id,
            case_id=case_id,
            agent_id=session.account.agent_id,
        )
        await self._publish("interactions.outbound", view.case.customer_id, encode(reply))
        await self.record(
            session,
            AgentActionKind.REPLIED,
            case_id=case_id,
            customer_id=view.case.customer_id,
            channel=str(use),
        )
        return reply

    async def note(self, session: Session, case_id: str, text: str) -> None:
        """Add an internal note to the case's timeline."""
        view = await self.case(session, case_id)
        entry = note_entry(
            uuid.uuid4(),
            datetime.now(UTC),
            case_id=case_id,
            agent_id=session.account.agent_id,
            text=text,
        )
        _, events = await apply_and_describe(
            self.cases.store,
            session.tenant,
            view.case.customer_id,
            [entry],
        )
        for event in events:
            await self._publish("cases.events", view.case.customer_id, encode(event))
        await self.record(
            session, AgentActionKind.NOTE, case_id=case_id, customer_id=view.case.customer_id
        )

    async def transfer(
        self,
        session: Session,
        case_id: str,
        *,
        to_agent: str | None = None,
        to_queue: str | None = None,
    ) -> None:
        """Hand the case to a colleague or back to a queue.

        Raises:
            KeyError: unknown queue.
            ValueError: neither or both targets given.
        """
        if (to_agent is None) == (to_queue is None):
            raise ValueError("transfer to exactly one of an agent or a queue")
        view = await self.case(session, case_id)
        customer_id = view.case.customer_id
        raw = await self.cases.store.read_customer(session.tenant, customer_id, timeline=10)
        doc = raw["cases"][case_id]
        parts = {"profile": raw["profile"], "timeline": raw["timeline"], "agents": raw["agents"]}
        request = request_for_case(
            session.tenant, doc, case_context(customer_id, doc, parts, timeline_is_json=False)
        )
        if view.case.queue:
            request = replace(request, queue_id=view.case.queue)
        outgoing = await self.routing.engine.transfer(
            request, to_agent=to_agent, to_queue=to_queue, by=session.account.agent_id
        )
        await self.routing.publish(outgoing)
        await self.record(
            session,
            AgentActionKind.TRANSFERRED,
            case_id=case_id,
            customer_id=customer_id,
            to=to_agent or to_queue or "",
        )

    async def resolve(self, session: Session, case_id: str, reason: str) -> None:
        """Resolve the case; its agent is freed for the next one."""
        view = await self.case(session, case_id)
        await self.cases.change_status(
            case_id, CaseStatus.RESOLVED, reason=reason, tenant=session.tenant
        )
        await self.record(
            session, AgentActionKind.RESOLVED, case_id=case_id, customer_id=view.case.customer_id
        )

    async def presence(self, session: Session, presence: str) -> None:
        """Available, busy, away or offline."""
        await self.routing.set_agent(
            session.account.agent_id, presence=presence, tenant=session.tenant
        )
        await self.record(session, AgentActionKind.PRESENCE, presence=presence)

    async def respond(self, session: Session, case_id: str, *, accept: bool) -> None:
        """Accept or decline an offer made to this agent.

        Raises:
            OfferRefused: no open offer for this agent.
        """
        agent = session.account.agent_id
        if accept:
            await self.routing.accept(case_id, agent, tenant=session.tenant)
        else:
            await self.routing.decline(case_id, agent, tenant=session.tenant)
        kind = AgentActionKind.ACCEPTED if accept else AgentActionKind.DECLINED
        await self.record(session, kind, case_id=case_id, customer_id=customer_of_case(case_id))

    async def my_cases(self, session: Session) -> list[dict[str, Any]]:
        """Cases assigned or offered to this agent, each with its customer, subject and status.

        Assigned cases come first, the longest-held first; then offers, the soonest to expire
        first. A case that cannot be read any more (merged away) is left out.
        """
        tenant, mine = session.tenant, session.account.agent_id
        store = self.routing.engine.store
        assigned, offered = await asyncio.gather(store.assignments(tenant), store.offers(tenant))
        rows: list[dict[str, Any]] = [
            {
                "case_id": case_id,
                "state": "assigned",
                "channel": a.get("channel"),
                "queue": a.get("queue"),
                "since": a.get("since"),
            }
            for case_id, a in sorted(assigned.items(), key=lambda item: item[1].get("since") or 0)
            if a.get("agent") == mine
        ]
        rows += [
            {
                "case_id": case_id,
                "state": "offered",
                "channel": o.get("channel"),
                "queue": o.get("queue"),
                "expires": o.get("expires"),
            }
            for case_id, o in sorted(offered.items(), key=lambda item: item[1].get("expires") or 0)
            if o.get("agent") == mine
        ]

        async def described(row: dict[str, Any]) -> dict[str, Any] | None:
            try:
                view = await self.cases.case(row["case_id"], tenant=tenant)
            except CaseNotFound:
                return None
            return {
                **row,
                "customer_id": view.case.customer_id,
                "customer_name": view.context.profile.name,
                "subject": view.case.subject,
                "status": str(view.case.status),
            }

        found = await asyncio.gather(*(described(row) for row in rows))
        return [row for row in found if row is not None]

    async def transfer_targets(
        self, session: Session, accounts: Sequence[Account]
    ) -> dict[str, list[dict[str, Any]]]:
        """Colleagues (with presence) and queues this agent may hand a case to."""
        states = await self.routing.agents(tenant=session.tenant)
        presence = {a.agent_id: a.presence for a in states}
        return {
            "agents": [
                {
                    "agent_id": a.agent_id,
                    "name": a.name or a.agent_id,
                    "queues": list(a.queues),
                    "presence": presence.get(a.agent_id, "offline"),
                }
                for a in accounts
                if a.agent_id != session.account.agent_id
            ],
            "queues": [
                {"queue_id": q.id, "name": q.name or q.id} for q in self.routing.engine.rules.queues
            ],
        }


__all__ = ["CaseNotFound", "DeskService", "Forbidden", "QueueView"]
