"""Rebuilding Redis state from the Kafka log (`omnirouter replay --from TIMESTAMP`).

What is rebuilt, each from the topics its worker consumes, with the workers' own functions:

- **identity** (identifier owners, customers, merges, merge reviews, operator splits) from
  ``interactions.inbound`` (the identity worker's input, through ``resolve_batch``) and
  ``customers.unmerged`` (operator splits, through ``unmerge``);
- **cases** (cases, timelines, profiles from events, contacts, previous agents, threads) from
  ``interactions.resolved``, ``interactions.outbound`` and ``customers.merged`` (the case
  worker's inputs), plus the changes made outside the stream that ``cases.events`` records:
  status changes and assignments (routing, the desktop, the status API) and agents' notes;
- **erasures** from ``customers.erased``: each one removes the person's rebuilt identity (in the
  identity pass) and case state (in the cases pass) at its place in the log, with the erasure's
  own removal steps, so the erased person does not come back and a later message from the same
  identifiers makes a new customer, as it did live. The erasure is not announced again.

What is not: routing state (agent presence and capacity, offers, queue positions, timers) is
live state that an old event cannot make true again, and re-routing from a replay would offer
cases twice; a case's own status, queue and agent are rebuilt with the case. Nor is what the
log does not hold: profile fields set through the profile API, and CRM imports. Processing
times (a customer's ``created_at_ms``, a merge's ``at_ms``) are the replay's own clock.

Records are applied in log order (by timestamp across topics and partitions). The replay
publishes nothing: every record it reads was already handled by the live workers, whose outputs
are on the log, or is still ahead of them, and they will handle it themselves (idempotently, on
the state rebuilt here), so no case is routed twice and no reply is sent twice. Every write is
idempotent on event_id, so replaying over intact state changes nothing. An erasure leaves no
such memory of the person's events (that is its point), so a state that holds an erasure (its
id is in ``IdentityKeys.erasures``, written live and by a replay) has the erased person's
earlier steps skipped instead: applied again, they would make a new customer of old messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from omnirouter.connections import read_topic
from omnirouter.events import (
    CaseEvent,
    CaseEventKind,
    CustomerErased,
    CustomerMerged,
    CustomerUnmerged,
    Direction,
    EventEnvelope,
    InteractionEvent,
    ResolvedInteraction,
    UndecodableEvent,
    decode,
    topic_spec,
)
from omnirouter.pipeline.cases.entries import (
    inbound_entry,
    note_entry,
    outbound_entry,
    status_entry,
)
from omnirouter.pipeline.cases.intents import IntentRule
from omnirouter.pipeline.identity.normalize import normalize_identifiers
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import ResolveRequest, new_customer_id

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings

# The topics read, in the order records with the same timestamp are applied (cause first).
INPUT_TOPICS = (
    "interactions.inbound",
    "customers.unmerged",
    "interactions.resolved",
    "interactions.outbound",
    "customers.merged",
    "cases.events",
    "customers.erased",
)


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One record read back from the log."""

    timestamp_ms: int
    topic_key: str
    partition: int
    offset: int
    value: bytes


def read_log(
    bootstrap_servers: str,
    *,
    topic_prefix: str,
    since: datetime,
    security: KafkaSettings | None = None,
) -> list[LoggedRecord]:
    """Every input record from ``since`` up to the current end, in the order they are applied.

    The records are held in memory to sort them across topics and partitions: replay windows
    are days of traffic, not the whole retention of a large deployment.
    """
    records = [
        LoggedRecord(r.timestamp, key, r.partition, r.offset, r.value or b"")
        for key in INPUT_TOPICS
        for r in read_topic(
            bootstrap_servers, topic_spec(key).name(topic_prefix), since=since, security=security
        )
    ]
    rank = {key: i for i, key in enumerate(INPUT_TOPICS)}
    records.sort(key=lambda r: (r.timestamp_ms, rank[r.topic_key], r.partition, r.offset))
    return records


@dataclass(frozen=True, slots=True)
class Resolve:
    """Identity: attribute one inbound event to a customer."""

    tenant: str
    request: ResolveRequest
    erased_by: str | None = None  # the later erasure (event id) that removed what this made


@dataclass(frozen=True, slots=True)
class Unmerge:
    """Identity: an operator's split."""

    tenant: str
    survivor_id: str
    restored_id: str
    erased_by: str | None = None


@dataclass(frozen=True, slots=True)
class CaseEntry:
    """Cases: one entry for one customer's case script."""

    tenant: str
    customer_id: str
    entry: dict[str, Any]
    origin: str  # "stream" or "outside" (a change made outside the stream: status, note)
    erased_by: str | None = None


@dataclass(frozen=True, slots=True)
class Fold:
    """Cases: fold a merged customer into its survivor."""

    merged: CustomerMerged
    erased_by: str | None = None


@dataclass(frozen=True, slots=True)
class Erase:
    """Identity, then cases: an erasure, at its place in the log."""

    erased: CustomerErased


IdentityStep = Resolve | Unmerge | Erase
_Marked = TypeVar("_Marked", bound=Resolve | Unmerge | CaseEntry | Fold)
CaseStep = CaseEntry | Fold | Erase
Place = tuple[int, int, int, int]  # timestamp, position in the log order, partition, offset


@dataclass
class RebuildPlan:
    """What to apply, per state domain, in log order (pure; see :func:`plan_rebuild`)."""

    identity: list[IdentityStep] = field(default_factory=list)
    cases: list[CaseStep] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    not_applicable: int = 0


_MODELS: dict[str, type[EventEnvelope]] = {
    "interactions.inbound": InteractionEvent,
    "customers.unmerged": CustomerUnmerged,
    "interactions.resolved": ResolvedInteraction,
    "interactions.outbound": InteractionEvent,
    "customers.merged": CustomerMerged,
    "cases.events": CaseEvent,
    "customers.erased": CustomerErased,
}


def plan_rebuild(
    records: Iterable[LoggedRecord],
    *,
    policy: IdentityPolicy,
    intent_rules: tuple[IntentRule, ...],
    tenant: str | None = None,
) -> RebuildPlan:
    """Turn log records into the steps the workers took, with the workers' functions (pure).

    Identity steps follow the log. Case steps follow the order the case worker applied them in,
    as its announcements on ``cases.events`` record it (its three input topics are consumed
    side by side, so a merge and the message that caused it may have been applied either way
    round); an input with no announcement keeps its place in the log. Records that do not
    decode are skipped: the live worker dead-lettered them already.

    An erasure is a step of both passes at its place; every step whose customer it erased is
    marked with it (``erased_by``), so a replay over a state that holds the erasure skips them.
    """
    plan = RebuildPlan()
    decoded: list[tuple[Place, str, EventEnvelope]] = []
    for position, record in enumerate(records):
        plan.read[record.topic_key] = plan.read.get(record.topic_key, 0) + 1
        try:
            event = decode(_MODELS[record.topic_key], record.value)
        except UndecodableEvent:
            plan.undecodable += 1
            continue
        if tenant is None or event.tenant == tenant:
            place = (record.timestamp_ms, position, record.partition, record.offset)
            decoded.append((place, record.topic_key, event))
    announced: dict[str, Place] = {}
    for place, _, event in decoded:
        if isinstance(event, CaseEvent) and event.cause_event_id is not None:
            announced.setdefault(str(event.cause_event_id), place)
    # Case events caused by a stream input are rebuilt from that input; the others record a
    # change made outside the stream, which only they hold.
    from_stream = {str(_stream_entry_id(key, e)) for _, key, e in decoded if _is_case_input(key)}
    rebuilt_outside: set[str] = set()
    erasures = _Erasures(decoded)
    identity_steps: list[tuple[tuple[Place, int, Place], IdentityStep]] = []
    case_steps: list[tuple[Place, CaseStep]] = []
    for place, key, event in decoded:
        step = _step(key, event, policy, intent_rules, from_stream, rebuilt_outside)
        if step is None:
            plan.not_applicable += 1
        elif isinstance(step, Erase):
            identity_steps.append(((place, 0, place), step))
            case_steps.append((place, step))
        elif isinstance(step, Resolve | Unmerge):
            order = erasures.identity_order(step, place)
            identity_steps.append((order, erasures.mark(step, order[0])))
        else:
            applied_at = place
            if _is_case_input(key):
                applied_at = announced.get(str(_stream_entry_id(key, event)), place)
            case_steps.append((applied_at, erasures.mark(step, applied_at)))
    identity_steps.sort(key=lambda item: item[0])
    plan.identity = [step for _, step in identity_steps]
    case_steps.sort(key=lambda item: item[0])
    plan.cases = [step for _, step in case_steps]
    return plan


class _Erasures:
    """Where the log's erasures are, whom they erased, and what that means for other steps."""

    def __init__(self, decoded: Sequence[tuple[Place, str, EventEnvelope]]) -> None:
        self._at: list[tuple[Place, CustomerErased]] = [
            (p, e) for p, _, e in decoded if isinstance(e, CustomerErased)
        ]
        # The live attribution of each inbound event, and where the identity worker wrote it.
        self._resolved = {
            str(e.interaction.event_id): (p, e.customer_id)
            for p, _, e in decoded
            if isinstance(e, ResolvedInteraction)
        }

    def identity_order(self, step: Resolve | Unmerge, place: Place) -> tuple[Place, int, Place]:
        """The sort key of an identity step: its place, unless it was in flight at an erasure.

        An event that reached the identity worker before an erasure but was resolved after it
        (to someone the erasure did not name) was resolved without the erased person, as a
        new customer: it goes right after that erasure, as it happened live.
        """
        if not isinstance(step, Resolve) or not self._at:
            return (place, 0, place)
        resolved_at, customer = self._resolved.get(str(step.request.event_id), (None, None))
        crossed = [
            at
            for at, erased in self._at
            if resolved_at is not None
            and place < at < resolved_at
            and erased.tenant == step.tenant
            and customer not in erased.erased_customer_ids
        ]
        return (max(crossed), 1, place) if crossed else (place, 0, place)

    def mark(self, step: _Marked, after: Place) -> _Marked:
        """``step`` with the first erasure after it that erased its customer, if any."""
        if not self._at:
            return step
        tenant, customers = self._whose(step)
        for at, erased in self._at:
            if at > after and erased.tenant == tenant and customers & {*erased.erased_customer_ids}:
                return replace(step, erased_by=str(erased.event_id))
        return step

    def _whose(self, step: Resolve | Unmerge | CaseEntry | Fold) -> tuple[str, set[str]]:
        """The tenant and the customers whose state ``step`` changes."""
        if isinstance(step, Resolve):
            live = self._resolved.get(str(step.request.event_id))
            # Without the worker's output in the window: the customer this event would create.
            return step.tenant, {live[1] if live else new_customer_id(step.request.event_id)}
        if isinstance(step, Unmerge):
            return step.tenant, {step.survivor_id, step.restored_id}
        if isinstance(step, Fold):
            return step.merged.tenant, {step.merged.survivor_id, step.merged.absorbed_id}
        return step.tenant, {step.customer_id}


def _is_case_input(key: str) -> bool:
    return key in ("interactions.resolved", "interactions.outbound", "customers.merged")


def _stream_entry_id(key: str, event: EventEnvelope) -> object:
    if isinstance(event, ResolvedInteraction):
        return event.interaction.event_id
    return event.event_id


def _step(
    key: str,
    event: EventEnvelope,
    policy: IdentityPolicy,
    intent_rules: tuple[IntentRule, ...],
    from_stream: set[str],
    rebuilt_outside: set[str],
) -> Resolve | Unmerge | CaseEntry | Fold | Erase | None:
    # The same decisions as the workers (identity/worker.py, cases/worker.py) on the same input.
    if key == "interactions.inbound" and isinstance(event, InteractionEvent):
        if event.direction is not Direction.INBOUND:
            return None
        usable = normalize_identifiers(event.identifiers, policy).usable
        if not usable and event.customer_id is None:
            return None
        return Resolve(event.tenant, ResolveRequest(event.event_id, usable, event.customer_id))
    if isinstance(event, CustomerUnmerged):
        return Unmerge(event.tenant, event.survivor_id, event.restored_id)
    if isinstance(event, ResolvedInteraction):
        entry = inbound_entry(event, intent_rules)
        return CaseEntry(event.tenant, event.customer_id, entry, "stream")
    if key == "interactions.outbound" and isinstance(event, InteractionEvent):
        if event.direction is not Direction.OUTBOUND or event.customer_id is None:
            return None
        return CaseEntry(event.tenant, event.customer_id, outbound_entry(event), "stream")
    if isinstance(event, CustomerMerged):
        return Fold(event)
    if isinstance(event, CustomerErased):
        return Erase(event)
    if isinstance(event, CaseEvent):
        return _outside_change(event, from_stream, rebuilt_outside)
    return None


def _outside_change(
    event: CaseEvent, from_stream: set[str], rebuilt_outside: set[str]
) -> CaseEntry | None:
    """The status change, assignment or note a case event announces, as the entry that made it.

    Its event id is the case event's cause, so the rebuilt entry is the one applied live.
    """
    cause = event.cause_event_id
    if cause is None or event.kind in (CaseEventKind.OPENED, CaseEventKind.FOLDED):
        return None
    if str(cause) in from_stream or str(cause) in rebuilt_outside:
        return None
    rebuilt_outside.add(str(cause))
    case = event.case
    note = next(
        (
            t
            for t in event.context.recent_timeline
            if t.entry_id == str(cause) and t.system_type == "note"
        ),
        None,
    )
    if note is not None and event.transition is None:
        entry = note_entry(
            cause, note.at, case_id=case.case_id, agent_id=note.agent_id or "", text=note.text
        )
    else:
        # The snapshot is the case after the change: an agent or queue the change did not set
        # is the one the case already had, which re-applying leaves as it is.
        transition = event.transition
        entry = status_entry(
            cause,
            transition.at if transition else case.updated_at,
            case_id=case.case_id,
            to=transition.to_status if transition else None,
            reason=transition.reason if transition else "",
            agent_id=case.assigned_agent_id,
            queue=case.queue,
        )
    return CaseEntry(event.tenant, case.customer_id, entry, "outside")
