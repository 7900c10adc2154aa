"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis): no request, however
malformed, with operator credentials, an agent's session or none, makes a server error, and
every documented response matches its schema.

The API is the one `omnirouter serve` assembles, on the session's real Kafka and Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from integration.security.surfaces import ADMIN_TOKEN, RULES, security_settings, served_api
from omnirouter.desktop.accounts import Account, Accounts
from omnirouter.devstack import StackAddresses

pytestmark = pytest.mark.integration

PASSWORD = "fuzz-agent-pw"
# Enough to reach every operation's validation and handler paths, and finish in well under a
# minute on two cores; a CI nightly may raise it.
EXAMPLES_PER_OPERATION = 12


async def add_agent(url: str, key_prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        accounts = Accounts(client, key_prefix=key_prefix, session_ttl_s=3600)
        account = Account(agent_id="fuzzy", queues=("general", "billing"))
        await accounts.save(account, tenant="default", password=PASSWORD)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def fuzzed_api(
    stack: StackAddresses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The served API, and the Authorization header of each kind of caller."""
    unique = uuid.uuid4().hex[:8]
    redis_prefix = f"test:fuzz-{unique}"
    rules = Path(tmp_path_factory.mktemp("fuzz")) / "rules.yaml"
    rules.write_text(RULES)
    settings_ = security_settings(stack, f"test.fuzz-{unique}.", redis_prefix, rules)
    asyncio.run(add_agent(stack.redis_url, redis_prefix))
    try:
        with served_api(settings_) as base_url:
            login = httpx.post(
                f"{base_url}/desk/api/login",
                json={"agent_id": "fuzzy", "password": PASSWORD},
                timeout=30,
            )
            assert login.status_code == 200, login.text
            yield {
                "base_url": base_url,
                "operator": f"Bearer {ADMIN_TOKEN}",
                "agent": f"Bearer {login.json()['token']}",
            }
    finally:
        client = redis.Redis.from_url(stack.redis_url)
        keys = list(client.scan_iter(match=f"*{redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# The live feed is an endless stream by design (a client leaves it, it never ends).
NOT_FUZZED = {"/desk/api/events"}
FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # each run fuzzes afresh; a failure prints its falsifying request
)


def success_matches_its_schema(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """The response schema of a 2xx; refusals are checked for status and reason elsewhere.

    The API answers domain refusals 422 with a reason string, where FastAPI documents every
    422 as its validation-error list: a known gap of the OpenAPI document, not a crash.
    """
    if response.status_code >= 300:
        return None
    return response_schema_conformance(ctx, response, case)


def operations(base_url: str) -> list[schemathesis.APIOperation]:
    """Every operation of the served app's OpenAPI document (the one a client would read)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path not in NOT_FUZZED]


@pytest.mark.parametrize(
    "caller", ["operator", "agent", None], ids=["operator", "agent", "anonymous"]
)
def test_no_request_makes_a_server_error(fuzzed_api: dict[str, str], caller: str | None) -> None:
    """Valid and invalid requests (schemathesis' positive and negative modes) to every
    operation; each documented response is checked against its schema."""
    headers = {"Authorization": fuzzed_api[caller]} if caller else {}
    fuzzed = operations(fuzzed_api["base_url"])
    assert len(fuzzed) > 30, "the served app's OpenAPI document lost its operations"
    failures: dict[str, BaseException] = {}
    for operation in fuzzed:
        requests = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @FUZZ
        @given(case=requests)
        def request_is_answered_sanely(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=fuzzed_api["base_url"],
                headers=headers,
                checks=[not_a_server_error, success_matches_its_schema],
                timeout=30,
            )

        try:
            request_is_answered_sanely()
        except Exception as exc:  # every operation is fuzzed; all failures are reported
            failures[operation.label] = exc
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
