"""Cases a batch closed leave routing together: one release per tenant, then one offer of the
freed capacity to the waiting cases; a failed offer is retried without releasing again. And
the routing store's pipelined scripts load themselves into a Redis that lost its script cache."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from omnirouter.events import DeadLetter, EventEnvelope
from omnirouter.pipeline.app import create_app
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate, EntryOutcome
from omnirouter.pipeline.cases.worker import CaseWorker
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.pipeline.stream import Outgoing
from omnirouter.settings import CaseSettings, PipelineSettings


def _closing(*case_ids: str) -> CustomerUpdate:
    """A customer's update in which a merge closed ``case_ids``."""
    transitions = tuple({"case_id": c, "from": "queued", "to": "closed"} for c in case_ids)
    outcome = EntryOutcome("e1", "fold", "", transitions, "", "", (), "", False)
    return CustomerUpdate(folded_into="", outcomes=(outcome,))


class FakeRoutingStore:
    def __init__(self, holders: dict[str, str], lost_replies: int = 0) -> None:
        self.holders = holders  # case_id -> the agent holding it
        self.releases: list[tuple[str, list[str]]] = []
        self._lost_replies = lost_replies

    async def release_many(
        self, tenant: str, case_ids: Sequence[str], now: datetime
    ) -> list[dict[str, Any]]:
        self.releases.append((tenant, list(case_ids)))
        # As release.lua: a case released a second time has no agent any more.
        released = [{"agent": self.holders.pop(case_id, "")} for case_id in case_ids]
        if self._lost_replies:  # Redis ran the scripts, then the connection dropped
            self._lost_replies -= 1
            raise RedisConnectionError("connection lost before the replies")
        return released


class FakeRouter:
    def __init__(
        self, holders: dict[str, str], drain_failures: int = 0, lost_replies: int = 0
    ) -> None:
        self.store = FakeRoutingStore(holders, lost_replies)
        self.drains: list[str] = []
        self._drain_failures = drain_failures

    async def drain(self, tenant: str, *, now: datetime | None = None) -> list[Outgoing]:
        self.drains.append(tenant)
        if self._drain_failures:
            self._drain_failures -= 1
            raise RedisConnectionError("Redis went away mid-drain")
        return [Outgoing("routing.decisions", f"offer-{tenant}", _placeholder())]


def _placeholder() -> EventEnvelope:
    return DeadLetter.for_payload(
        b"{}", b"", stage="routing", reason="stands in for a decision", error_type="Test"
    )


def _worker(router: FakeRouter, unique_id: str) -> CaseWorker:
    return CaseWorker(
        create_app(f"releases-{unique_id}", "127.0.0.1:9"),
        None,  # type: ignore[arg-type]  # no case store needed for releases
        settings=CaseSettings(),
        pipeline=PipelineSettings(),
        topic_prefix=f"t.{unique_id}.",
        router=router,  # type: ignore[arg-type]
    )


async def test_closed_cases_are_released_per_tenant_then_offered_once(unique_id: str) -> None:
    router = FakeRouter({"case_a1": "pat", "case_a2": "quinn", "case_b1": ""})
    live: list[tuple[CustomerRef, CustomerUpdate]] = [
        (("acme", "cus_1"), _closing("case_a2")),
        (("beta", "cus_2"), _closing("case_b1")),
        (("acme", "cus_3"), _closing("case_a1")),
        (("acme", "cus_4"), CustomerUpdate(folded_into="")),  # closed nothing
    ]
    out = await _worker(router, unique_id)._release_closed_cases(live)
    # One pipelined release per tenant, its cases in order; a drain only where an agent was
    # freed (beta's case was only queued).
    assert router.store.releases == [("acme", ["case_a1", "case_a2"]), ("beta", ["case_b1"])]
    assert router.drains == ["acme"]
    assert [o.key for o in out] == ["offer-acme"]


async def test_a_failed_offer_is_retried_without_releasing_again(unique_id: str) -> None:
    router = FakeRouter({"case_a1": "pat"}, drain_failures=1)
    out = await _worker(router, unique_id)._release_closed_cases(
        [(("acme", "cus_1"), _closing("case_a1"))]
    )
    assert router.store.releases == [("acme", ["case_a1"])]
    assert router.drains == ["acme", "acme"]
    assert [o.key for o in out] == ["offer-acme"]


async def test_capacity_freed_by_a_release_whose_reply_was_lost_is_still_offered(
    unique_id: str,
) -> None:
    router = FakeRouter({"case_a1": "pat"}, lost_replies=1)
    out = await _worker(router, unique_id)._release_closed_cases(
        [(("acme", "cus_1"), _closing("case_a1"))]
    )
    # The retry finds the case gone (no agent in its answer); the drain runs all the same.
    assert router.store.releases == [("acme", ["case_a1"]), ("acme", ["case_a1"])]
    assert router.drains == ["acme"]
    assert [o.key for o in out] == ["offer-acme"]


class ForgetfulRedis:
    """A Redis whose script cache was lost (a restart, a failover): EVALSHA fails until the
    script is loaded again."""

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.loads = 0
        self.calls: list[tuple[Any, ...]] = []

    def register_script(self, source: str) -> Any:
        class Script:
            script = source
            sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's own hash

        return Script()

    async def script_load(self, source: str) -> str:
        self.loads += 1
        sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324
        self.loaded.add(sha)
        return sha

    def pipeline(self, *, transaction: bool = True) -> ForgetfulPipeline:
        return ForgetfulPipeline(self)


class ForgetfulPipeline:
    def __init__(self, redis: ForgetfulRedis) -> None:
        self._redis = redis
        self._queued: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> ForgetfulPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def execute_command(self, *args: Any) -> None:
        self._queued.append(args)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        results: list[Any] = []
        for command, sha, numkeys, *rest in self._queued:
            assert command == "EVALSHA"
            self._redis.calls.append((sha, *rest))
            if sha not in self._redis.loaded:
                results.append(NoScriptError("No matching script"))
                continue
            payload = orjson.loads(rest[numkeys + 1])
            results.append(orjson.dumps({"agent": f"agent-of-{payload['case_id']}"}))
        return results


async def test_releases_load_their_script_into_a_redis_that_lost_it() -> None:
    redis = ForgetfulRedis()
    store = RoutingStore(redis, key_prefix="omni")  # type: ignore[arg-type]
    released = await store.release_many("acme", ["case_1", "case_2"], datetime(2026, 11, 28))
    assert released == [{"agent": "agent-of-case_1"}, {"agent": "agent-of-case_2"}]
    assert redis.loads == 1
    assert len(redis.calls) == 4  # both refused, the script loaded, both again


@pytest.mark.parametrize("case_ids", [[], ["case_1"]])
async def test_nothing_to_release_or_one_case(case_ids: list[str]) -> None:
    redis = ForgetfulRedis()
    store = RoutingStore(redis, key_prefix="omni")  # type: ignore[arg-type]
    released = await store.release_many("acme", case_ids, datetime(2026, 11, 28))
    assert released == [{"agent": f"agent-of-{c}"} for c in case_ids]
    assert redis.loads == (1 if case_ids else 0)
