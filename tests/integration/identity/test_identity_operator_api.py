"""Operators split merged customers over HTTP and from the CLI; both are recorded as events."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from pydantic import SecretStr

from omnirouter.devstack import StackAddresses
from omnirouter.events import CustomerUnmerged, ResolvedInteraction
from omnirouter.http import create_http_app
from omnirouter.settings import ApiSettings
from support.events import identifier, inbound
from support.stack import redis_env

pytestmark = pytest.mark.integration

TOKEN = "s3cret-operator-token"


async def _merged_pair(identity) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    first = inbound("sms", identifier("phone", "+15550102345"))
    second = inbound("email", identifier("email", "dee@example.com"))
    both = inbound(
        "webform", identifier("email", "dee@example.com"), identifier("phone", "+15550102345")
    )
    for event in (first, second, both):
        identity.send(event)
    resolved = await identity.wait(
        "interactions.resolved",
        ResolvedInteraction,
        lambda items: len(items) == 3,
        "three resolutions",
    )
    by_cause = {r.causation_id: r for r in resolved}
    assert by_cause[both.event_id].merged_customer_ids == (by_cause[second.event_id].customer_id,)
    return by_cause[first.event_id].customer_id, by_cause[second.event_id].customer_id


def _client(identity, token: str | None = TOKEN) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    app = create_http_app(
        ApiSettings(admin_token=SecretStr(token) if token else None), identity=identity.operations
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://omnirouter")


async def test_operator_endpoints_need_a_valid_bearer_token(identity) -> None:  # type: ignore[no-untyped-def]
    async with _client(identity) as client:
        assert (await client.get("/api/identity/reviews")).status_code == 401
        wrong = await client.get("/api/identity/reviews", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
    async with _client(identity, token=None) as closed:
        answer = await closed.get(
            "/api/identity/reviews", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 503
        assert "OMNIROUTER_API__ADMIN_TOKEN" in answer.json()["detail"]


async def test_unmerge_over_http_splits_the_customer_and_answers_with_the_event(identity) -> None:  # type: ignore[no-untyped-def]
    survivor, absorbed = await _merged_pair(identity)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with _client(identity) as client:
        merged = (await client.get(f"/api/identity/customers/{absorbed}", headers=auth)).json()
        assert merged["customer_id"] == survivor  # the absorbed id answers with its survivor
        assert [m["absorbed_id"] for m in merged["merges"]] == [absorbed]

        split = await client.post(
            f"/api/identity/customers/{survivor}/unmerge",
            json={"operator": "lead@contact-center", "reason": "different people"},
            headers=auth,
        )
        assert split.status_code == 200, split.text
        event = CustomerUnmerged.model_validate(split.json())
        assert (event.survivor_id, event.restored_id) == (survivor, absorbed)
        assert [i.address for i in event.restored_identifiers] == ["email:dee@example.com"]

        restored = (await client.get(f"/api/identity/customers/{absorbed}", headers=auth)).json()
        assert restored["customer_id"] == absorbed
        assert restored["status"] == "active"
        again = await client.post(
            f"/api/identity/customers/{survivor}/unmerge", json={"operator": "lead"}, headers=auth
        )
        assert again.status_code == 409
        assert "no recorded merge" in again.json()["detail"]
        assert (
            await client.get("/api/identity/customers/cus_nobody", headers=auth)
        ).status_code == 404
    published = await identity.wait(
        "customers.unmerged", CustomerUnmerged, lambda items: len(items) == 1, "the split event"
    )
    assert published[0] == event


async def test_unmerge_from_the_command_line(
    identity, stack: StackAddresses, redis_prefix: str
) -> None:  # type: ignore[no-untyped-def]
    survivor, absorbed = await _merged_pair(identity)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(
        OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
        OMNIROUTER_KAFKA__TOPIC_PREFIX=identity.prefix,
        OMNIROUTER_REDIS__URL=stack.redis_url,
        OMNIROUTER_REDIS__KEY_PREFIX=redis_prefix,
    )
    env.update(redis_env())  # a Redis Cluster when the session runs on one
    cli = [sys.executable, "-m", "omnirouter.cli", "identity"]

    shown = await asyncio.to_thread(
        subprocess.run,
        [*cli, "show", survivor],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"merged {absorbed} via" in shown.stdout
    split = await asyncio.to_thread(
        subprocess.run,
        [*cli, "unmerge", survivor, "--operator", "ops-oncall", "--reason", "wrong merge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert split.returncode == 0, split.stderr
    assert f"split {absorbed} from {survivor}" in split.stdout
    refused = await asyncio.to_thread(
        subprocess.run,
        [*cli, "unmerge", survivor, "--operator", "ops-oncall"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("omnirouter: error: cannot unmerge: no recorded merge")
    published = await identity.wait(
        "customers.unmerged", CustomerUnmerged, lambda items: len(items) == 1, "the split event"
    )
    assert published[0].operator == "ops-oncall"
