"""Reading cases for desktops, and the changes made from outside the stream (status, profile).

Shared by the HTTP API and tests: every change goes through the same case script as the
stream, and is announced as a ``CaseEvent`` acknowledged by Kafka before success is reported.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnirouter.events import (
    DEFAULT_TENANT,
    CaseContext,
    CaseEvent,
    CaseSnapshot,
    CaseStatus,
    CustomerProfile,
    TimelineEntry,
    encode,
    topic_spec,
)
from omnirouter.pipeline.cases.entries import customer_of_case, profile_entry, status_entry
from omnirouter.pipeline.cases.snapshot import (
    case_context,
    case_events,
    case_snapshot,
    customer_profile,
    timeline_entry,
)
from omnirouter.pipeline.cases.store import CustomerUpdate, RedisCaseStore
from omnirouter.pipeline.identity.operations import EventPublisher


class CaseNotFound(LookupError):  # noqa: N818 - maps to HTTP 404, reads as the outcome
    """No such case or customer."""


class CaseChangeRefused(ValueError):  # noqa: N818 - maps to HTTP 409, reads as the outcome
    """The change is not allowed in the case's current state; the message says why."""


@dataclass(frozen=True, slots=True)
class CustomerView:
    """A customer with their profile, cases and cross-channel timeline."""

    customer_id: str
    profile: CustomerProfile
    open_case_id: str | None
    cases: tuple[CaseSnapshot, ...]
    timeline: tuple[TimelineEntry, ...]
    previous_agents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case with the context an agent sees."""

    case: CaseSnapshot
    context: CaseContext


async def apply_and_describe(
    store: RedisCaseStore, tenant: str, customer_id: str, entries: list[dict[str, Any]]
) -> tuple[CustomerUpdate, list[CaseEvent]]:
    """Apply entries to one customer (one round trip) and build the case events they cause."""
    current = await store.current_customer(tenant, customer_id)
    update = (await store.apply({(tenant, current): entries}))[(tenant, current)]
    return update, describe_update(tenant, current, update)


def case_contexts(customer_id: str, update: CustomerUpdate) -> dict[str, CaseContext]:
    """The context of each case an applied update returned."""
    return {
        case_id: case_context(customer_id, doc, update.context)
        for case_id, doc in update.cases.items()
    }


def describe_update(
    tenant: str,
    customer_id: str,
    update: CustomerUpdate,
    *,
    contexts: dict[str, CaseContext] | None = None,
    now: datetime | None = None,
) -> list[CaseEvent]:
    """The case events an applied update causes, each case with its context (``contexts``
    when the caller built them already; ``now`` is their time, the clock's by default)."""
    if contexts is None:
        contexts = case_contexts(customer_id, update)
    events: list[CaseEvent] = []
    snapshots: dict[str, CaseSnapshot] = {}
    for outcome in update.outcomes:
        if outcome.error:
            continue
        events.extend(
            case_events(
                outcome,
                tenant=tenant,
                cases=update.cases,
                context_for=contexts,
                occurred_at=now or datetime.now(UTC),
                snapshots=snapshots,
            )
        )
    return events


class CaseOperations:
    """Reads and out-of-stream changes on cases."""

    def __init__(
        self,
        store: RedisCaseStore,
        publisher: EventPublisher,
        *,
        topic_prefix: str,
        context_entries: int,
        contacts_window_days: int = 7,
    ) -> None:
        """Read and change ``store``; announce through ``publisher``."""
        self._store = store
        self._publisher = publisher
        self._topic = topic_spec("cases.events").name(topic_prefix)
        self._context_entries = context_entries
        self._contacts_window_ms = contacts_window_days * 86_400_000
        # Routing frees the agent's capacity when a case is resolved or closed.
        self.on_case_left: Callable[[str, str], Awaitable[Any]] | None = None

    @property
    def store(self) -> RedisCaseStore:
        """The case store these operations act on."""
        return self._store

    async def customer(
        self, customer_id: str, *, tenant: str = DEFAULT_TENANT, timeline: int = 100
    ) -> CustomerView:
        """A customer (a merged-away id answers with its survivor), newest cases first.

        Raises:
            CaseNotFound: nothing is known of the customer.
        """
        current = await self._store.current_customer(tenant, customer_id)
        raw = await self._store.read_customer(tenant, current, timeline=timeline)
        if not raw["cases"] and not raw["profile"] and not raw["timeline"]:
            raise CaseNotFound(f"no cases or timeline for customer {customer_id}")
        cases = sorted(
            (case_snapshot(doc) for doc in raw["cases"].values()),
            key=lambda c: c.opened_at,
            reverse=True,
        )
        return CustomerView(
            customer_id=current,
            profile=customer_profile(current, raw["profile"]),
            open_case_id=raw["open_case"],
            cases=tuple(cases),
            timeline=tuple(
                sorted((timeline_entry(e) for e in raw["timeline"]), key=lambda t: t.at)
            ),
            previous_agents=tuple(raw["agents"]),
        )

    async def case(self, case_id: str, *, tenant: str = DEFAULT_TENANT) -> CaseView:
        """A case and its context.

        Raises:
            CaseNotFound: no such case.
        """
        customer_id, doc, raw = await self._locate(tenant, case_id)
        parts: dict[str, Any] = {
            "profile": raw["profile"],
            "timeline": raw["timeline"],
            "agents": raw["agents"],
            "contacts_in_window": await self._contacts(tenant, customer_id),
        }
        return CaseView(
            case=case_snapshot(doc),
            context=case_context(customer_id, doc, parts, timeline_is_json=False),
        )

    async def change_status(
        self,
        case_id: str,
        to: CaseStatus | None,
        *,
        reason: str,
        agent_id: str | None = None,
        queue: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[CaseEvent]:
        """Move a case to ``to`` (and/or assign it), announce it, return the events.

        Raises:
            CaseNotFound: no such case.
            CaseChangeRefused: the lifecycle does not allow the transition.
        """
        customer_id, _, _ = await self._locate(tenant, case_id)
        entry = status_entry(
            uuid.uuid4(),
            datetime.now(UTC),
            case_id=case_id,
            to=to,
            reason=reason,
            agent_id=agent_id,
            queue=queue,
        )
        update, events = await apply_and_describe(self._store, tenant, customer_id, [entry])
        if update.outcomes[0].error:
            raise CaseChangeRefused(update.outcomes[0].error)
        for event in events:
            await asyncio.to_thread(
                self._publisher.publish, self._topic, customer_id, encode(event)
            )
        if to in (CaseStatus.RESOLVED, CaseStatus.CLOSED) and self.on_case_left is not None:
            await self.on_case_left(tenant, case_id)
        return events

    async def update_profile(
        self,
        customer_id: str,
        *,
        tenant: str = DEFAULT_TENANT,
        name: str | None = None,
        language: str | None = None,
        tier: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> CustomerProfile:
        """Set profile fields from a CRM or an operator; fields left None stay as they are."""
        current = await self._store.current_customer(tenant, customer_id)
        entry = profile_entry(
            uuid.uuid4(),
            datetime.now(UTC),
            name=name,
            language=language,
            tier=tier,
            attributes=attributes,
        )
        await self._store.apply({(tenant, current): [entry]})
        raw = await self._store.read_customer(tenant, current, timeline=1)
        return customer_profile(current, raw["profile"])

    async def _locate(
        self, tenant: str, case_id: str
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        opened_for = customer_of_case(case_id)
        if opened_for is None:
            raise CaseNotFound(f"{case_id} is not a case id")
        current = await self._store.current_customer(tenant, opened_for)
        raw = await self._store.read_customer(tenant, current, timeline=self._context_entries)
        doc = raw["cases"].get(case_id)
        if doc is None:
            raise CaseNotFound(f"no case {case_id}")
        return current, doc, raw

    async def _contacts(self, tenant: str, customer_id: str) -> int:
        keys = self._store.keys(tenant, customer_id)
        newest = await self._store.client.zrevrange(keys.contacts, 0, 0, withscores=True)
        if not newest:
            return 0
        horizon = float(newest[0][1]) - self._contacts_window_ms
        return int(await self._store.client.zcount(keys.contacts, horizon, "+inf"))
