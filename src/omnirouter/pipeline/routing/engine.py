"""The routing engine: decisions (pure) made real through atomic reservations in Redis.

Used by the case worker (new and reopened cases), the timer loop (offer expiry, sticky waits,
escalations, SLA breaches, queue openings) and the desktop API (presence, accept, decline).
Every method returns the records to publish; the caller publishes them (faust in workers,
kafka-python in the API), so the engine itself never touches Kafka.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from omnirouter.events import (
    CaseEvent,
    CaseRouted,
    CaseStatus,
    Channel,
    Content,
    Direction,
    IdentifierKind,
    InteractionEvent,
    ProviderRefs,
    RoutingDecision,
    RoutingOutcome,
    RoutingReason,
    derived_event_id,
)
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_sla_breach, observed
from omnirouter.pipeline.cases.entries import customer_of_case, status_entry
from omnirouter.pipeline.cases.operations import apply_and_describe
from omnirouter.pipeline.cases.store import CustomerUpdate, RedisCaseStore
from omnirouter.pipeline.routing.decide import Decision, RoutingRequest
from omnirouter.pipeline.routing.estimate import describe_wait, estimate_wait_s
from omnirouter.pipeline.routing.planning import (
    RoutePlan,
    Verdict,
    announcement,
    derived_event_id_for,
    plan_route,
    verdict_of,
)
from omnirouter.pipeline.routing.rules import RoutingRules
from omnirouter.pipeline.routing.store import RoutingStore, millis, request_from_json
from omnirouter.pipeline.stream import Outgoing

log = get_logger(__name__)

IDENTIFIER_FOR_CHANNEL = {
    Channel.SMS: IdentifierKind.PHONE,
    Channel.WHATSAPP: IdentifierKind.PHONE,
    Channel.VOICE: IdentifierKind.PHONE,
    Channel.EMAIL: IdentifierKind.EMAIL,
    Channel.WEBFORM: IdentifierKind.EMAIL,
    Channel.WEBCHAT: IdentifierKind.CHAT_VISITOR,
}


class OfferRefused(ValueError):  # noqa: N818 - maps to HTTP 409, reads as the outcome
    """An accept or decline that does not fit the offer; the message says why."""


class RoutingEngine:
    """Routes cases to queues and agents, and keeps every decision explained."""

    def __init__(self, rules: RoutingRules, store: RoutingStore, cases: RedisCaseStore) -> None:
        """Route with ``rules``; reservations in ``store``; case status in ``cases``."""
        self.rules = rules
        self.store = store
        self.cases = cases
        self._cases = cases

    @observed("routing")
    async def route(
        self,
        request: RoutingRequest,
        *,
        cause: str,
        now: datetime | None = None,
        clear_timers: tuple[str, ...] = (),
        previous_queue: str | None = None,
        repeatable: bool = False,
        replay_only: bool = False,
    ) -> list[Outgoing]:
        """Offer a case to the best eligible agent, or queue it; announce the decision.

        A ``repeatable`` cause is a stream event (the case worker's input), which a crash can
        deliver again: the same cause again announces the decision made for it before, with
        the same event ids, instead of deciding anew. ``replay_only`` makes only such a repeat,
        never a new decision (the event is known to be a redelivery).
        """
        now = now or datetime.now(UTC)
        tenant = request.tenant
        await self.store.note_tenant(tenant)
        agents = await self.store.agents(tenant)
        plan = plan_route(
            self.rules,
            request,
            agents,
            cause=cause,
            now=now,
            clear_timers=clear_timers,
            previous_queue=previous_queue,
            repeatable=repeatable,
            replay_only=replay_only,
        )
        verdict = verdict_of(plan, await self.store.route(tenant, plan.payload))
        if verdict is None:
            return []
        routing, entry = announcement(plan, verdict)
        update, events = await apply_and_describe(
            self._cases, tenant, plan.request.customer_id, [entry]
        )
        return await self.announced(plan, verdict, routing, update, events)

    async def announced(
        self,
        plan: RoutePlan,
        verdict: Verdict,
        routing: RoutingDecision,
        update: CustomerUpdate,
        events: list[CaseEvent],
    ) -> list[Outgoing]:
        """The records announcing a routing decision, once its case status is applied."""
        request = plan.request
        out = [Outgoing("routing.decisions", request.customer_id, routing)]
        out.extend(self._case_outgoing(request.customer_id, events))
        latest = next((e for e in reversed(events) if e.case.case_id == request.case_id), None)
        if latest is not None and latest.case.customer_id != request.customer_id:
            # The customer was merged into another between the request and now: the case moved
            # (folded into the survivor's, which routing releases). A routed-case record would
            # pair a snapshot and a decision of different customers — and its validation error
            # crashed the case agent once (found by the bench). The decision stays on record.
            log.info(
                "routed case moved by a merge; not announced as routed",
                case_id=request.case_id,
                customer_id=request.customer_id,
                now_with=latest.case.customer_id,
            )
            latest = None
        if latest is not None:
            out.append(
                Outgoing(
                    "cases.routed",
                    request.customer_id,
                    CaseRouted(
                        event_id=derived_event_id(routing.event_id, "routed"),
                        tenant=request.tenant,
                        occurred_at=plan.now,
                        causation_id=routing.event_id,
                        case=latest.case,
                        decision=routing,
                        context=latest.context,
                    ),
                )
            )
        if update.outcomes and update.outcomes[0].error:
            log.warning(
                "case status not updated", case_id=request.case_id, error=update.outcomes[0].error
            )
        if verdict.ack:
            out.extend(await self._acknowledgement(request, plan.decision, out, now=plan.now))
        return out

    async def respond(
        self, tenant: str, case_id: str, agent_id: str, *, accept: bool, now: datetime | None = None
    ) -> list[Outgoing]:
        """An agent accepts or declines an offer.

        Raises:
            OfferRefused: no open offer for this agent, or it expired.
        """
        now = now or datetime.now(UTC)
        action = "accept" if accept else "decline"
        result = await self.store.respond(tenant, case_id, agent_id, action, now)
        if result.get("error"):
            raise OfferRefused(result["error"])
        return await self._after_response(tenant, case_id, result, now=now, expired=False)

    async def expire_offer(self, tenant: str, case_id: str, now: datetime) -> list[Outgoing]:
        """The offer's accept timeout passed: release the agent and route again."""
        result = await self.store.respond(tenant, case_id, "", "expire", now)
        if result.get("error"):
            await self.store.forget_timer(tenant, "offer", case_id)
            return []
        return await self._after_response(tenant, case_id, result, now=now, expired=True)

    async def release(
        self, tenant: str, case_id: str, now: datetime | None = None
    ) -> list[Outgoing]:
        """A case was resolved or closed: free its agent and offer them the next waiting case."""
        now = now or datetime.now(UTC)
        released = await self.store.release(tenant, case_id, now)
        return await self.drain(tenant, now=now) if released.get("agent") else []

    async def transfer(
        self,
        request: RoutingRequest,
        *,
        to_agent: str | None = None,
        to_queue: str | None = None,
        by: str,
        now: datetime | None = None,
    ) -> list[Outgoing]:
        """Hand a case to a named colleague, or back to a queue for the next agent.

        Raises:
            KeyError: ``to_queue`` is not a queue of the rules.
        """
        now = now or datetime.now(UTC)
        tenant = request.tenant
        if to_agent is not None:
            queue = request.queue_id or self.rules.default_queue
            previous = await self.store.assign(
                tenant, request.case_id, to_agent, str(request.channel), queue, now
            )
            event_id = derived_event_id(
                derived_event_id_for(request.case_id), f"routing:transfer:{to_agent}:{millis(now)}"
            )
            decision = RoutingDecision(
                event_id=event_id,
                tenant=tenant,
                occurred_at=now,
                case_id=request.case_id,
                customer_id=request.customer_id,
                queue=queue,
                strategy="transfer",
                outcome=RoutingOutcome.ASSIGNED,
                agent_id=to_agent,
                reasons=(
                    RoutingReason(
                        code="transfer",
                        message=f"{by} transferred the case from "
                        f"{previous or 'the queue'} to {to_agent}",
                        data={"by": by},
                    ),
                ),
            )
            _, events = await apply_and_describe(
                self._cases,
                tenant,
                request.customer_id,
                [
                    status_entry(
                        event_id,
                        now,
                        case_id=request.case_id,
                        to=CaseStatus.ASSIGNED,
                        reason=f"transferred by {by}",
                        agent_id=to_agent,
                    )
                ],
            )
            return [
                Outgoing("routing.decisions", request.customer_id, decision),
                *self._case_outgoing(request.customer_id, events),
            ]
        target = self.rules.queue(to_queue or request.queue_id or self.rules.default_queue)
        await self.store.release(tenant, request.case_id, now)
        moved = replace(
            request,
            queue_id=target.id,
            rule_id=None,
            enqueued_at=None,
            escalation_step=0,
            previous_agents=(),
            declined_by=(by,),
        )
        return await self.route(moved, cause=f"transfer:{by}:{millis(now)}", now=now)

    async def drain(
        self, tenant: str, *, now: datetime | None = None, limit: int = 20
    ) -> list[Outgoing]:
        """Offer waiting cases to agents who can take them now (after presence or capacity
        changes): the best-placed waiting cases of every queue are routed again."""
        now = now or datetime.now(UTC)
        waiting: list[tuple[float, RoutingRequest]] = []
        for queue in self.rules.queues:
            for request, score in await self.store.queue_view(tenant, queue.id, limit=limit):
                waiting.append((score, request))
        waiting.sort(key=lambda item: item[0])
        out: list[Outgoing] = []
        for _, request in waiting[:limit]:
            out.extend(await self.route(request, cause=f"drain:{request.case_id}", now=now))
        return out

    async def fire_due_timers(self, now: datetime) -> list[Outgoing]:
        """Fire every due timer of every tenant (claimed with a lease: none is lost)."""
        out: list[Outgoing] = []
        for tenant in await self.store.tenants():
            for kind, case_id in await self.store.due_timers(tenant, now):
                out.extend(await self.fire_timer(tenant, kind, case_id, now))
        return out

    async def fire_timer(
        self, tenant: str, kind: str, case_id: str, now: datetime
    ) -> list[Outgoing]:
        """Handle one due timer."""
        if kind == "offer":
            return await self.expire_offer(tenant, case_id, now)
        request = await self.store.waiting_request(tenant, case_id)
        if request is None:
            await self.store.forget_timer(tenant, kind, case_id)
            return []
        previous_queue = request.queue_id
        if kind == "escalate":
            queue = self.rules.queue(request.queue_id or self.rules.default_queue)
            index = request.escalation_step
            step = queue.escalation[index] if index < len(queue.escalation) else None
            if step is not None and step.move_to is not None:
                # Moved on: the new queue's own escalation steps start from the beginning.
                request = replace(request, queue_id=step.move_to, escalation_step=0)
            else:
                request = replace(request, escalation_step=index + 1)
        elif kind == "sla":
            count_sla_breach(request.queue_id or self.rules.default_queue, tenant=tenant)
            request = replace(request, sla_breached=True)
        return await self.route(
            request,
            cause=f"timer:{kind}:{case_id}:{millis(now)}",
            now=now,
            clear_timers=(kind,),
            previous_queue=previous_queue,
        )

    async def _after_response(
        self, tenant: str, case_id: str, result: dict[str, Any], *, now: datetime, expired: bool
    ) -> list[Outgoing]:
        agent = result.get("agent") or None
        raw = result.get("request") or ""
        request = request_from_json(raw) if raw else None
        if result["state"] == "assigned":
            customer_id = request.customer_id if request else (customer_of_case(case_id) or "")
            decision_event = RoutingDecision(
                event_id=derived_event_id(
                    derived_event_id_for(case_id), f"routing:accept:{agent}:{millis(now)}"
                ),
                tenant=tenant,
                occurred_at=now,
                case_id=case_id,
                customer_id=customer_id,
                queue=request.queue_id if request else None,
                strategy="accept",
                outcome=RoutingOutcome.ASSIGNED,
                agent_id=agent,
                reasons=(
                    RoutingReason(code="accepted", message=f"{agent} accepted the offer", data={}),
                ),
            )
            _, events = await apply_and_describe(
                self._cases,
                tenant,
                customer_id,
                [
                    status_entry(
                        decision_event.event_id,
                        now,
                        case_id=case_id,
                        to=CaseStatus.ASSIGNED,
                        reason=f"{agent} accepted",
                        agent_id=agent,
                    )
                ],
            )
            return [
                Outgoing("routing.decisions", customer_id, decision_event),
                *self._case_outgoing(customer_id, events),
            ]
        if request is None:
            return []
        why = "offer expired" if expired else "offer declined"
        request = replace(
            request, declined_by=(*request.declined_by, agent) if agent else request.declined_by
        )
        return await self.route(request, cause=f"{why}:{case_id}:{agent}:{millis(now)}", now=now)

    def _case_outgoing(self, customer_id: str, events: list[CaseEvent]) -> list[Outgoing]:
        return [Outgoing("cases.events", customer_id, e) for e in events]

    async def _acknowledgement(
        self,
        request: RoutingRequest,
        decision: Decision,
        announced: list[Outgoing],
        *,
        now: datetime,
    ) -> list[Outgoing]:
        queue = decision.queue
        routed = next((o.event for o in announced if isinstance(o.event, CaseRouted)), None)
        if routed is None:
            return []
        profile = routed.context.profile
        wanted = IDENTIFIER_FOR_CHANNEL.get(request.channel)
        to = [i for i in profile.identifiers if i.kind == wanted] or list(profile.identifiers[:1])
        if not to:
            return []
        view = await self.store.queue_view(request.tenant, queue.id, limit=1000)
        position = next(
            (i + 1 for i, (r, _) in enumerate(view) if r.case_id == request.case_id), len(view) or 1
        )
        agents = await self.store.agents(request.tenant)
        serving = sum(
            self.rules.capacity_for(request.channel, a.capacity)
            for a in agents
            if a.presence in ("available", "busy")
            and all(a.skills.get(s, 0) >= lvl for s, lvl in decision.requirements.skills.items())
        )
        opens_in = (decision.opens_at - now).total_seconds() if decision.opens_at else 0.0
        wait_s = estimate_wait_s(
            position=position,
            serving_slots=serving,
            avg_handle_s=await self.store.handle_time(request.tenant, queue.id),
            sla_first_response_s=queue.sla.first_response_s,
            opens_in_s=opens_in,
        )
        language = (
            request.language
            if request.language in queue.auto_ack.templates
            else queue.auto_ack.default_language
        )
        text = queue.auto_ack.templates[language].format(
            name=profile.name or "there",
            wait=describe_wait(wait_s),
            queue=queue.name or queue.id,
        )
        ack = InteractionEvent(
            event_id=derived_event_id(
                derived_event_id_for(request.case_id), f"autoack:{millis(request.opened_at)}"
            ),
            tenant=request.tenant,
            occurred_at=now,
            channel=request.channel,
            direction=Direction.OUTBOUND,
            identifiers=(to[0],),
            content=Content(text=text, language=language),
            provider=ProviderRefs(provider="omnirouter"),
            customer_id=request.customer_id,
            case_id=request.case_id,
            attributes={"auto_ack": "true", "estimated_wait_s": str(int(wait_s))},
        )
        return [Outgoing("interactions.outbound", request.customer_id, ack)]
