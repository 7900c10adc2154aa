"""Building case snapshots, context and case events from the store's documents (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from omnirouter.events import (
    CaseContext,
    CaseEvent,
    CaseEventKind,
    CaseSnapshot,
    CaseStatus,
    Channel,
    CustomerProfile,
    Direction,
    Identifier,
    IntentTag,
    StatusChange,
    TimelineEntry,
    TimelineEntryKind,
    derived_event_id,
    identifier_from_address,
)
from omnirouter.pipeline.cases.store import EntryOutcome, as_list
from omnirouter.pipeline.cases.story import StoryFragment, render_story


# Cached: every snapshot and context turns the same few stored instants (a case's opening, its
# history, the timeline's entries) into datetimes again and again, batch after batch.
@lru_cache(maxsize=65_536)
def _at(ms: int | float | None) -> datetime | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _required_at(ms: int | float) -> datetime:
    moment = _at(ms)
    return moment if moment is not None else datetime.fromtimestamp(0, tz=UTC)


def case_snapshot(doc: dict[str, Any]) -> CaseSnapshot:
    """A case document as the contract's snapshot."""
    effort = doc.get("effort") or {}
    first_contact = _at(effort.get("first_contact_at"))
    first_response = _at(effort.get("first_response_at"))
    resolved = _at(effort.get("resolved_at"))
    # One validation of plain values (statuses, channels and nested models as strings and
    # dicts): pydantic-core converts them in one pass, cheaper than a model or an enum lookup
    # per value in Python, and the result is the same.
    return CaseSnapshot.model_validate(
        {
            "case_id": doc["case_id"],
            "customer_id": doc["customer_id"],
            "status": doc["status"],
            "opened_at": _required_at(doc["opened_at"]),
            "updated_at": _required_at(doc["updated_at"]),
            "resolved_at": _at(doc.get("resolved_at")),
            "channels": tuple(as_list(doc.get("channels"))),
            "subject": doc.get("subject") or None,
            "queue": doc.get("queue") or None,
            "assigned_agent_id": doc.get("assigned_agent_id") or None,
            "interaction_count": int(doc.get("interaction_count", 0)),
            "reopen_count": int(doc.get("reopen_count", 0)),
            "status_history": tuple(_status_change(h) for h in as_list(doc.get("history"))),
            "effort": {
                "contacts": int(effort.get("contacts", 0)),
                "channels_used": tuple(as_list(effort.get("channels"))),
                "channel_switches": int(effort.get("switches", 0)),
                "transfers": int(effort.get("transfers", 0)),
                "first_contact_at": first_contact,
                "first_response_at": first_response,
                "resolved_at": resolved,
                "time_to_first_response_s": (
                    (first_response - first_contact).total_seconds()
                    if first_response and first_contact
                    else None
                ),
                "time_to_resolution_s": (
                    (resolved - first_contact).total_seconds()
                    if resolved and first_contact
                    else None
                ),
            },
            "intents": tuple(_intent_tag(i) for i in as_list(doc.get("intents"))),
            "agents": tuple(as_list(doc.get("agents"))),
            "folded_case_ids": tuple(as_list(doc.get("folded"))),
        }
    )


def uuid_or_none(value: Any) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# A case's status history and intent tags only ever grow: the entries a snapshot shows were
# shown by the case's earlier snapshots too. Validating each one once (its model is frozen, so
# snapshots can share it) halves the snapshot's validation; pydantic takes a model instance as
# it is. An entry that does not validate (or hash) goes in as before, so the snapshot fails
# exactly as it always did.
_PART_CACHE = 8_192


def _status_change(raw: Any) -> StatusChange | Any:
    try:
        return _cached_status_change(tuple(raw.items()))
    except (AttributeError, TypeError, KeyError, ValidationError):
        return _status_change_fields(raw)


def _status_change_fields(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "from_status": h.get("from") or None,
        "to_status": h["to"],
        "at": _required_at(h["at"]),
        "reason": h.get("reason", ""),
        "event_id": uuid_or_none(h.get("event_id")),
    }


@lru_cache(maxsize=_PART_CACHE)
def _cached_status_change(items: tuple[tuple[str, Any], ...]) -> StatusChange:
    return StatusChange.model_validate(_status_change_fields(dict(items)))


def _intent_tag(raw: Any) -> IntentTag | Any:
    try:
        return _cached_intent_tag(tuple(raw.items()))
    except (AttributeError, TypeError, ValidationError):
        return raw


@lru_cache(maxsize=_PART_CACHE)
def _cached_intent_tag(items: tuple[tuple[str, Any], ...]) -> IntentTag:
    return IntentTag.model_validate(dict(items))


def timeline_entry(raw: dict[str, Any]) -> TimelineEntry:
    """A stored timeline entry as the contract's model."""
    # Plain values in one validation: pydantic-core turns kind, direction and channel into
    # their enums in the same pass, a third cheaper than an enum call per value in Python.
    try:
        return _validated_timeline_entry(raw)
    except ValidationError:
        # A corrupt entry fails as it always did (an unknown kind is the enum's ValueError).
        return TimelineEntry(
            entry_id=raw["entry_id"],
            at=_required_at(raw["at"]),
            kind=TimelineEntryKind(raw["kind"]),
            direction=Direction(raw["direction"]) if raw.get("direction") else None,
            channel=Channel(raw["channel"]) if raw.get("channel") else None,
            case_id=raw.get("case_id") or None,
            text=(raw.get("text") or "")[:4000],
            subject=raw.get("subject") or None,
            agent_id=raw.get("agent_id") or None,
            attachments=int(raw.get("attachments") or 0),
            system_type=raw.get("system_type") or None,
        )


def _validated_timeline_entry(raw: dict[str, Any]) -> TimelineEntry:
    return TimelineEntry.model_validate(
        {
            "entry_id": raw["entry_id"],
            "at": _required_at(raw["at"]),
            "kind": raw["kind"],
            "direction": raw.get("direction") or None,
            "channel": raw.get("channel") or None,
            "case_id": raw.get("case_id") or None,
            "text": (raw.get("text") or "")[:4000],
            "subject": raw.get("subject") or None,
            "agent_id": raw.get("agent_id") or None,
            "attachments": int(raw.get("attachments") or 0),
            "system_type": raw.get("system_type") or None,
        }
    )


# A stored timeline entry (JSON) -> its model. The context carries the newest entries, so each
# entry is parsed for about as many contexts as it stays among them: parse it once. The models
# are frozen, so sharing one between events is safe. Two generations bound the memory and keep
# what recent batches used: a full young generation becomes the old one, the old one goes.
# Full means so many entries or so many bytes of stored JSON: texts of 4,000 characters would
# otherwise let 16k entries (kept twice: JSON and model) grow to hundreds of MB.
_TIMELINE_GENERATION = 8_192
_TIMELINE_GENERATION_BYTES = 4 * 1024 * 1024


class _TimelineCache:
    def __init__(
        self, entries: int = _TIMELINE_GENERATION, size: int = _TIMELINE_GENERATION_BYTES
    ) -> None:
        self._entries, self._size = entries, size
        self.young: dict[bytes | str, TimelineEntry] = {}
        self.old: dict[bytes | str, TimelineEntry] = {}
        self.young_bytes = 0

    def entry(self, raw: bytes | str) -> TimelineEntry:
        entry = self.young.get(raw)
        if entry is None:
            entry = self.old.get(raw)
            if entry is None:
                entry = timeline_entry(orjson.loads(raw))
            if len(self.young) >= self._entries or self.young_bytes >= self._size:
                self.old, self.young, self.young_bytes = self.young, {}, 0
            self.young[raw] = entry
            self.young_bytes += len(raw)
        return entry


_timeline_cache = _TimelineCache()


def _flat_to_map(flat: Any) -> dict[str, str]:
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    items = as_list(flat)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


# Every context carries the customer's identifiers, the same few addresses batch after batch:
# each address becomes its (frozen) model once. An invalid address raises every time, as before.
@lru_cache(maxsize=_PART_CACHE)
def _identifier(address: str) -> Identifier:
    return identifier_from_address(address)


def customer_profile(customer_id: str, fields: dict[str, str]) -> CustomerProfile:
    """The stored profile hash as the contract's model."""
    attributes = orjson.loads(fields.get("attributes", "{}")) or {}
    identifiers = as_list(orjson.loads(fields.get("identifiers", "[]")))
    return CustomerProfile(
        customer_id=customer_id,
        name=fields.get("name") or None,
        language=fields.get("language") or None,
        tier=fields.get("tier") or None,
        attributes={str(k): str(v) for k, v in attributes.items()},
        identifiers=tuple(_identifier(a) for a in identifiers),
    )


def case_context(
    customer_id: str,
    case_doc: dict[str, Any] | None,
    parts: dict[str, Any],
    *,
    timeline_is_json: bool = True,
) -> CaseContext:
    """The context an agent sees with a case, from the parts the apply script returned."""
    raw_entries = as_list(parts.get("timeline"))
    parsed = (
        [_timeline_cache.entry(e) for e in raw_entries]
        if timeline_is_json
        else [timeline_entry(e) for e in raw_entries]
    )
    timeline = sorted(parsed, key=lambda t: t.at)
    contacts = int(parts.get("contacts_in_window") or 0)
    story = ""
    if case_doc is not None:
        fragments = [
            StoryFragment(int(f["at"]), str(f["channel"]), str(f["text"]))
            for f in as_list(case_doc.get("story"))
        ]
        story = render_story(fragments)
    return CaseContext(
        profile=customer_profile(customer_id, _flat_to_map(parts.get("profile"))),
        recent_timeline=tuple(timeline),
        previous_agents=tuple(str(a) for a in as_list(parts.get("agents"))),
        contacts_last_7_days=contacts,
        repeat_contact=contacts >= 2,
        story_so_far=story,
    )


def case_events(
    outcome: EntryOutcome,
    *,
    tenant: str,
    cases: dict[str, dict[str, Any]],
    context_for: dict[str, CaseContext],
    occurred_at: datetime,
    snapshots: dict[str, CaseSnapshot] | None = None,
) -> list[CaseEvent]:
    """The case events one applied entry announces: one per transition, else one update.

    Ids derive from the entry's event id, so a replay re-announces with the same ids.
    ``snapshots`` (case_id -> snapshot of ``cases[case_id]``) is filled and reused across the
    entries of one update, whose events all show each case as the update left it.
    """
    memo: dict[str, CaseSnapshot] = {} if snapshots is None else snapshots

    def snapshot_of(case_id: str) -> CaseSnapshot:
        snapshot = memo.get(case_id)
        if snapshot is None:
            snapshot = memo[case_id] = case_snapshot(cases[case_id])
        return snapshot

    source = uuid.UUID(outcome.event_id)
    events: list[CaseEvent] = []
    for index, t in enumerate(outcome.transitions):
        if t["case_id"] not in cases:
            continue
        if not t.get("from"):
            kind = CaseEventKind.OPENED
        elif t["case_id"] == outcome.reopened and t["to"] == CaseStatus.NEW:
            kind = CaseEventKind.REOPENED
        else:
            kind = CaseEventKind.STATUS_CHANGED
        events.append(
            CaseEvent(
                event_id=derived_event_id(source, f"case:{t['case_id']}:{index}"),
                tenant=tenant,
                occurred_at=occurred_at,
                causation_id=source,
                cause_event_id=source,
                kind=kind,
                case=snapshot_of(t["case_id"]),
                context=context_for[t["case_id"]],
                transition=StatusChange(
                    from_status=CaseStatus(t["from"]) if t.get("from") else None,
                    to_status=CaseStatus(t["to"]),
                    at=_required_at(t["at"]),
                    reason=t.get("reason", ""),
                    event_id=source,
                ),
            )
        )
    announced = {e.case.case_id for e in events}
    if outcome.case_id and outcome.case_id in cases and outcome.case_id not in announced:
        kind = CaseEventKind.FOLDED if outcome.type == "fold" else CaseEventKind.UPDATED
        events.append(
            CaseEvent(
                event_id=derived_event_id(source, f"case:{outcome.case_id}:update"),
                tenant=tenant,
                occurred_at=occurred_at,
                causation_id=source,
                cause_event_id=source,
                kind=kind,
                case=snapshot_of(outcome.case_id),
                context=context_for[outcome.case_id],
            )
        )
    return events
