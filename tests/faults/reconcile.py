"""After a fault run: is every acknowledged event in its customer's timeline exactly once, and
is every case routed exactly once? Reads Redis (identity, timelines, cases) and Kafka
(cases.routed), as an operator auditing the router would."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
import redis

from omnirouter.events import DEFAULT_TENANT, CaseRouted
from omnirouter.redis_keys import CustomerCaseKeys, IdentityKeys

_SHOWN = 5  # ids quoted in a failure message; the counts say how many there are


@dataclass
class Reconciliation:
    """Lost and duplicated events and routings, by id."""

    acknowledged: int
    customers: int
    cases: int
    lost_events: list[str] = field(default_factory=list)
    duplicated_events: list[str] = field(default_factory=list)
    unrouted_cases: list[str] = field(default_factory=list)
    cases_routed_twice: list[str] = field(default_factory=list)
    routed_records_repeated: int = 0

    @property
    def lost(self) -> int:
        """Acknowledged events missing from their timeline, plus cases never routed."""
        return len(self.lost_events) + len(self.unrouted_cases)

    @property
    def duplicated(self) -> int:
        """Events more than once in their timeline, plus cases with more than one routing."""
        return len(self.duplicated_events) + len(self.cases_routed_twice)

    def describe(self) -> str:
        """One paragraph for an assertion message."""
        return (
            f"{self.acknowledged} acknowledged events of {self.customers} customers, "
            f"{self.cases} cases: lost events {len(self.lost_events)} "
            f"{self.lost_events[:_SHOWN]}, duplicated events {len(self.duplicated_events)} "
            f"{self.duplicated_events[:_SHOWN]}, unrouted cases {len(self.unrouted_cases)} "
            f"{self.unrouted_cases[:_SHOWN]}, cases routed more than once "
            f"{len(self.cases_routed_twice)} {self.cases_routed_twice[:_SHOWN]}"
        )


def reconcile(
    client: redis.Redis,
    redis_prefix: str,
    acknowledged: dict[str, str],
    routed_records: list[bytes],
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reconciliation:
    """Count what was lost or duplicated.

    Args:
        client: the router's Redis.
        redis_prefix: the router's key prefix.
        acknowledged: event_id -> the sender's identifier address ("phone:+1…"), for every
            event whose write was acknowledged.
        routed_records: every record value on the cases.routed topic.
        tenant: the tenant the events were sent for.
    """
    addresses = sorted(set(acknowledged.values()))
    identity = IdentityKeys(redis_prefix, tenant)
    owners = dict(zip(addresses, client.hmget(identity.identifier_owner, addresses), strict=True))
    customers = sorted({o.decode() for o in owners.values() if o is not None})
    with client.pipeline(transaction=False) as pipe:
        for customer in customers:
            keys = CustomerCaseKeys(redis_prefix, tenant, customer)
            pipe.lrange(keys.timeline, 0, -1)
            pipe.hkeys(keys.cases)
        replies = pipe.execute()
    timeline_counts: dict[str, Counter[str]] = {}
    case_ids: list[str] = []
    for customer, entries, cases in zip(customers, replies[::2], replies[1::2], strict=True):
        parsed = [orjson.loads(raw) for raw in entries]
        timeline_counts[customer] = Counter(
            e["entry_id"] for e in parsed if e.get("kind") == "message"
        )
        case_ids.extend(c.decode() for c in cases)

    result = Reconciliation(len(acknowledged), len(customers), len(case_ids))
    for event_id, address in acknowledged.items():
        owner = owners[address]
        seen = timeline_counts.get(owner.decode(), Counter()) if owner else Counter()
        if seen[event_id] == 0:
            result.lost_events.append(event_id)
        elif seen[event_id] > 1:
            result.duplicated_events.append(event_id)

    routings: dict[str, set[str]] = defaultdict(set)
    records = Counter[str]()
    for raw in routed_records:
        routed = CaseRouted.model_validate_json(raw)
        routings[routed.case.case_id].add(str(routed.event_id))
        records[str(routed.event_id)] += 1
    for case_id in case_ids:
        if not routings.get(case_id):
            result.unrouted_cases.append(case_id)
        elif len(routings[case_id]) > 1:
            result.cases_routed_twice.append(case_id)
    result.routed_records_repeated = sum(n - 1 for n in records.values())
    return result
