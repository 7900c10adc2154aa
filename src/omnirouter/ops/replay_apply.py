"""Applying a replay's plan (:mod:`omnirouter.ops.replay`) to Redis with the workers' stores.

Every step goes through the store call its worker makes, batched (one round trip per batch);
an erasure goes through the erasure's own removal steps, announcing nothing. Steps of a person
whose erasure the state already holds are skipped: their effects were removed, not remembered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from omnirouter.ops.replay import (
    CaseEntry,
    CaseStep,
    Erase,
    Fold,
    IdentityStep,
    RebuildPlan,
    Resolve,
)
from omnirouter.pipeline.cases.entries import fold_entry
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate, RedisCaseStore
from omnirouter.pipeline.identity.erasure import StateErasure
from omnirouter.pipeline.identity.store import RedisIdentityStore, UnmergeRefused

BATCH = 500


@dataclass
class RebuildReport:
    """What a replay read and did."""

    read: dict[str, int]
    undecodable: int = 0
    not_applicable: int = 0
    resolved: int = 0
    already_resolved: int = 0
    unmerged: int = 0
    already_unmerged: int = 0
    case_entries: int = 0
    already_applied: int = 0
    outside_changes: int = 0
    refused: list[str] = field(default_factory=list)
    erased_customers: int = 0
    erased_case_keys: int = 0
    erasures: int = 0
    skipped_as_erased: int = 0

    def lines(self) -> list[str]:
        """The report for a terminal."""
        read = ", ".join(f"{k} {n}" for k, n in self.read.items()) or "nothing"
        return [
            f"read {sum(self.read.values())} records ({read}); {self.undecodable} undecodable "
            f"(already dead letters), {self.not_applicable} not for state",
            f"identity: {self.resolved} events resolved, {self.already_resolved} already known; "
            f"{self.unmerged} splits made, {self.already_unmerged} already made",
            f"cases: {self.case_entries} entries applied, {self.already_applied} already "
            f"applied, {len(self.refused)} refused ({self.outside_changes} were status changes "
            "and notes made outside the stream)",
            *(f"  refused: {why}" for why in self.refused[:10]),
            f"erasures: {self.erasures} applied at their place in the log "
            f"({self.erased_customers} customers and {self.erased_case_keys} case keys removed); "
            f"{self.skipped_as_erased} steps of people whose erasure this state holds skipped",
            "published nothing (outputs of these records are on the log already)",
        ]


async def apply_plan(
    plan: RebuildPlan,
    identity: RedisIdentityStore,
    cases: RedisCaseStore,
    erasure: StateErasure,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> RebuildReport:
    """Apply a plan with the workers' store calls, batched: one round trip per batch."""
    report = RebuildReport(
        dict(plan.read), undecodable=plan.undecodable, not_applicable=plan.not_applicable
    )
    # Read before anything is applied: the erasures this replay makes itself do not count.
    tenants = {step.erased.tenant for step in plan.identity if isinstance(step, Erase)}
    held: set[str] = set()
    for tenant in sorted(tenants):
        held |= await erasure.erasures_made(tenant)

    def to_apply(steps: Sequence[Any]) -> list[Any]:
        kept = [s for s in steps if isinstance(s, Erase) or s.erased_by not in held]
        report.skipped_as_erased += len(steps) - len(kept)
        return kept

    await _rebuild_identity(to_apply(plan.identity), identity, erasure, report)
    progress(f"identity rebuilt ({len(plan.identity)} steps)")
    await _rebuild_cases(to_apply(plan.cases), cases, erasure, report)
    progress(f"cases rebuilt ({len(plan.cases)} steps)")
    return report


async def _rebuild_identity(
    steps: Sequence[IdentityStep],
    store: RedisIdentityStore,
    erasure: StateErasure,
    report: RebuildReport,
) -> None:
    pending: list[Resolve] = []
    # Erasure id -> customers this replay created from its person's events: when the window
    # starts after the person's first message, they have ids the erasure does not name.
    created_for: dict[str, set[str]] = defaultdict(set)

    async def flush() -> None:
        by_tenant: dict[str, list[Resolve]] = defaultdict(list)
        for step in pending:
            by_tenant[step.tenant].append(step)
        for tenant, items in by_tenant.items():
            resolutions = await store.resolve_batch(tenant, [s.request for s in items])
            for step, resolution in zip(items, resolutions, strict=True):
                if resolution.replayed:
                    report.already_resolved += 1
                    continue
                report.resolved += 1
                if step.erased_by is not None and resolution.is_new:
                    created_for[step.erased_by].add(resolution.customer_id)
        pending.clear()

    for step in steps:
        if isinstance(step, Resolve):
            pending.append(step)
            if len(pending) >= BATCH:
                await flush()
            continue
        await flush()
        if isinstance(step, Erase):
            report.erasures += 1
            also = created_for.pop(str(step.erased.event_id), set())
            report.erased_customers += await erasure.forget_identity(step.erased, also=also)
            continue
        try:
            await store.unmerge(step.tenant, step.survivor_id, step.restored_id)
            report.unmerged += 1
        except UnmergeRefused:
            report.already_unmerged += 1  # split before (intact state), or no such merge
    await flush()


async def _rebuild_cases(
    steps: Sequence[CaseStep],
    store: RedisCaseStore,
    erasure: StateErasure,
    report: RebuildReport,
) -> None:
    pending: dict[CustomerRef, list[CaseEntry]] = defaultdict(list)
    size = 0

    async def flush() -> None:
        nonlocal size
        work = {ref: [s.entry for s in items] for ref, items in pending.items()}
        updates = await store.apply(work)
        # As the case worker does: entries for a customer folded away go to the survivor.
        redirected: dict[CustomerRef, list[dict[str, Any]]] = defaultdict(list)
        for (tenant, customer_id), update in updates.items():
            if update.folded_into:
                target = await store.current_customer(tenant, update.folded_into)
                redirected[(tenant, target)].extend(work[(tenant, customer_id)])
            else:
                _count(update, report)
        for update in (await store.apply(redirected)).values() if redirected else ():
            _count(update, report)
        report.outside_changes += sum(
            1 for items in pending.values() for s in items if s.origin == "outside"
        )
        pending.clear()
        size = 0

    for step in steps:
        if isinstance(step, Erase):
            await flush()  # what the case worker applied before the erasure, then the erasure
            report.erased_case_keys += await erasure.forget_cases(step.erased)
            continue
        if isinstance(step, Fold):
            await flush()  # the absorbed customer's state must be complete before export
            merged = step.merged
            export = await store.export(merged.tenant, merged.absorbed_id, merged.survivor_id)
            step = CaseEntry(merged.tenant, merged.survivor_id, fold_entry(merged, export), "")
        pending[(step.tenant, step.customer_id)].append(step)
        size += 1
        if size >= BATCH:
            await flush()
    await flush()


def _count(update: CustomerUpdate, report: RebuildReport) -> None:
    for outcome in update.outcomes:
        if outcome.error:
            report.refused.append(f"{outcome.event_id}: {outcome.error}")
        elif outcome.replayed:
            report.already_applied += 1
        else:
            report.case_entries += 1
