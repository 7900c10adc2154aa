"""The desktop's read API over HTTP, on the real pipeline: a case, a customer, their cases."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from omnirouter.events import CaseEvent
from omnirouter.http import create_http_app
from omnirouter.pipeline.cases.operations import CaseOperations
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.settings import ApiSettings
from support.events import identifier, inbound

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer desk-token"}


def _client(pipeline) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    publisher = KafkaEventPublisher(pipeline.producer)
    cases = CaseOperations(
        pipeline.cases, publisher, topic_prefix=pipeline.prefix, context_entries=10
    )
    identity = IdentityOperations(pipeline.identity, publisher, topic_prefix=pipeline.prefix)
    app = create_http_app(
        ApiSettings(admin_token=SecretStr("desk-token")), identity=identity, cases=cases
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://omnirouter")


async def test_a_desktop_reads_the_case_the_customer_and_resolves_it(pipeline) -> None:  # type: ignore[no-untyped-def]
    first = inbound(
        "email", identifier("email", "max@example.com"), text="I cannot log in", minutes_ago=5
    )
    second = inbound(
        "webchat", identifier("email", "max@example.com"), text="Password reset link is broken"
    )
    for event in (first, second):
        pipeline.send(event)
    events = await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: {first.event_id, second.event_id} <= {e.cause_event_id for e in items},
        "both messages on the case",
    )
    case_id = events[-1].case.case_id
    customer_id = events[-1].case.customer_id

    async with _client(pipeline) as client:
        assert (await client.get(f"/api/cases/{case_id}")).status_code == 401
        case = (await client.get(f"/api/cases/{case_id}", headers=AUTH)).json()
        assert case["case"]["case_id"] == case_id
        assert [
            t["text"] for t in case["context"]["recent_timeline"] if t["kind"] == "message"
        ] == [
            "I cannot log in",
            "Password reset link is broken",
        ]
        assert [i["tag"] for i in case["case"]["intents"]] == ["account_access"]

        customer = (await client.get(f"/api/customers/{customer_id}", headers=AUTH)).json()
        assert customer["open_case_id"] == case_id
        assert [i["value"] for i in customer["profile"]["identifiers"]] == ["max@example.com"]
        listed = (await client.get(f"/api/customers/{customer_id}/cases", headers=AUTH)).json()
        assert [c["case_id"] for c in listed] == [case_id]

        profile = await client.put(
            f"/api/customers/{customer_id}/profile",
            json={"name": "Max Mustermann", "tier": "gold", "attributes": {"plan": "pro"}},
            headers=AUTH,
        )
        assert profile.json()["tier"] == "gold"
        assert profile.json()["attributes"] == {"plan": "pro"}

        resolved = await client.post(
            f"/api/cases/{case_id}/status",
            json={"to": "resolved", "reason": "link re-sent"},
            headers=AUTH,
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()[0]["transition"]["to_status"] == "resolved"
        refused = await client.post(
            f"/api/cases/{case_id}/status", json={"to": "offered", "reason": "x"}, headers=AUTH
        )
        assert refused.status_code == 409
        assert "cannot go from resolved to offered" in refused.json()["detail"]
        assert (await client.get("/api/cases/case_0.cus_nobody", headers=AUTH)).status_code == 404
        assert (await client.get("/api/cases/not-a-case", headers=AUTH)).status_code == 404

    announced = await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: any(e.transition and e.transition.to_status == "resolved" for e in items),
        "the resolution announced",
    )
    assert announced[-1].case.case_id == case_id
