"""Nobody sees what is not theirs on the desktop: every desk API route needs a session, an
agent cannot read or act on a case of a queue they do not serve, and an agent's session does
not open the operator API.

Routes are taken from the served app's OpenAPI document, so a route added later is covered
without touching this file (a new route with a request body needs a valid body below).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from integration.security.surfaces import ADMIN_TOKEN, RULES, security_settings, served_api
from omnirouter.desktop.accounts import Account, Accounts
from omnirouter.desktop.api import COOKIE
from omnirouter.devstack import StackAddresses
from omnirouter.events import ResolvedInteraction
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.snapshot import case_context
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.loader import parse_rules
from omnirouter.pipeline.routing.requests import request_for_case
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound

pytestmark = pytest.mark.integration

DESK = "/desk/api"
PUBLIC_DESK_ROUTES = {("POST", f"{DESK}/login")}
# The live feed streams until the client leaves; it is checked for 401 only.
STREAMS = {("GET", f"{DESK}/events")}
# Offers answer 409 "no open offer for this case" for a case never offered to the agent,
# exactly as for a case that does not exist: refused, and nothing learned about the case.
OFFER_ACTIONS = re.compile(rf"^{DESK}/offers/{{case_id}}/(accept|decline)$")
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", f"{DESK}/presence"): {"presence": "away"},
    ("POST", f"{DESK}/cases/{{case_id}}/reply"): {"text": "Here is your refund."},
    ("POST", f"{DESK}/cases/{{case_id}}/notes"): {"text": "Customer is upset."},
    ("POST", f"{DESK}/cases/{{case_id}}/transfer"): {"queue": "general"},
    ("POST", f"{DESK}/cases/{{case_id}}/resolve"): {"reason": "done"},
}
PASSWORD = "ava-pw"
SECRET_TEXT = "my card 4111 was charged twice, invoice 77"


@dataclass
class Desk:
    """The served API, an agent of queue "general", and a case waiting in each queue."""

    base_url: str
    routes: list[tuple[str, str, dict[str, Any]]]
    agent_token: str
    own_case: str
    other_case: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client of the API, closed with the fixture."""
        self.clients.append(httpx.Client(base_url=self.base_url, timeout=30, **kwargs))
        return self.clients[-1]

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def agent(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.agent_token}"})


async def open_case(client: aioredis.Redis, redis_prefix: str, number: int, text: str) -> str:
    """A new customer's case, opened and routed (nobody is available: it waits in its queue)."""
    cases = RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
    event = inbound("email", identifier("email", f"c{number}@example.com"), text=text)
    customer = f"cus_security_{number}"
    resolved = ResolvedInteraction(
        occurred_at=event.occurred_at,
        customer_id=customer,
        interaction=event,
        is_new_customer=True,
        identifiers=event.identifiers,
    )
    entry = inbound_entry(resolved, CaseSettings().intent_rules)
    update = (await cases.apply({("default", customer): [entry]}))[("default", customer)]
    case_id = update.outcomes[0].opened
    assert case_id is not None
    doc = update.cases[case_id]
    request = request_for_case("default", doc, case_context(customer, doc, update.context))
    engine = RoutingEngine(parse_rules(RULES), RoutingStore(client, key_prefix=redis_prefix), cases)
    await engine.route(request, cause="security test")
    return case_id


@pytest.fixture
async def desk_state(stack: StackAddresses, redis_prefix: str) -> AsyncIterator[tuple[str, str]]:
    """An agent account and two routed cases, written before the API starts."""
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        accounts = Accounts(client, key_prefix=redis_prefix, session_ttl_s=3600)
        await accounts.save(
            Account(agent_id="ava", queues=("general",)), tenant="default", password=PASSWORD
        )
        own = await open_case(client, redis_prefix, 1, "Where is my parcel?")
        other = await open_case(client, redis_prefix, 2, SECRET_TEXT)
        yield own, other
    finally:
        await client.aclose()


@pytest.fixture
def desk(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    tmp_path: Path,
    desk_state: tuple[str, str],
) -> Iterator[Desk]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = security_settings(stack, f"test.{unique_id}.", redis_prefix, rules)
    with served_api(settings) as base_url:
        spec = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
        routes = [
            (method.upper(), path, operation)
            for path, item in spec["paths"].items()
            for method, operation in item.items()
        ]
        login = httpx.post(
            f"{base_url}{DESK}/login", json={"agent_id": "ava", "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 200, login.text
        opened = Desk(base_url, routes, login.json()["token"], *desk_state)
        try:
            yield opened
        finally:
            for client in opened.clients:
                client.close()


def desk_routes(desk: Desk) -> list[tuple[str, str, dict[str, Any]]]:
    found = [r for r in desk.routes if r[1].startswith(f"{DESK}/")]
    assert len(found) > 10, "the desk API is not in the served app's OpenAPI document"
    return found


def body_for(method: str, path: str, operation: dict[str, Any]) -> dict[str, Any] | None:
    if "requestBody" not in operation:
        return None
    if (method, path) in PUBLIC_DESK_ROUTES:
        return {"agent_id": "ava", "password": "wrong"}
    assert (method, path) in VALID_BODIES, f"add a valid body for {method} {path}"
    return VALID_BODIES[(method, path)]


def test_every_desk_route_refuses_a_request_without_a_session(desk: Desk) -> None:
    anonymous = desk.client()
    forged = desk.client(headers={"Authorization": "Bearer default.not-a-session"})
    stale_cookie = desk.client(cookies={COOKIE: "default.signed-out-long-ago"})
    checked = 0
    for method, path, operation in desk_routes(desk):
        if (method, path) in PUBLIC_DESK_ROUTES:
            continue
        url = path.format(case_id=desk.other_case, queue_id="billing")
        body = body_for(method, path, operation)
        for client in (anonymous, forged, stale_cookie):
            answer = client.request(method, url, json=body)
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
            assert answer.json()["detail"], f"{method} {path}: a refusal says why"
        checked += 1
    assert checked == len(desk_routes(desk)) - len(PUBLIC_DESK_ROUTES)


def test_an_agent_can_neither_read_nor_act_on_a_case_of_another_queue(desk: Desk) -> None:
    agent, admin = desk.agent(), desk.admin()
    before = admin.get(f"/api/cases/{desk.other_case}").json()["case"]
    assert before["queue"] == "billing"
    # Control: the same session reads a case of its own queue.
    assert agent.get(f"{DESK}/cases/{desk.own_case}").status_code == 200

    refused = []
    for method, path, operation in desk_routes(desk):
        if "{case_id}" not in path and "{queue_id}" not in path:
            if method == "GET" and (method, path) not in STREAMS:
                listing = agent.get(path)
                assert listing.status_code == 200, f"{method} {path}: {listing.text}"
                assert desk.other_case not in listing.text, f"{path} lists the other queue's case"
            continue
        url = path.format(case_id=desk.other_case, queue_id="billing")
        answer = agent.request(method, url, json=body_for(method, path, operation))
        # A case the agent may not see answers as one that does not exist; a queue they do not
        # serve is refused outright (queue names are no secret).
        expected = 409 if OFFER_ACTIONS.match(path) else 404 if "{case_id}" in path else 403
        assert answer.status_code == expected, f"{method} {path}: {answer.status_code}"
        assert SECRET_TEXT not in answer.text and "c2@example.com" not in answer.text
        refused.append((method, path))
    # case, timeline, reply, notes, transfer, resolve, accept, decline, and the queue
    assert len(refused) >= 9, refused

    after = admin.get(f"/api/cases/{desk.other_case}").json()
    assert after["case"] == before, "a refused action changed the case"
    assert all(e.get("kind") != "note" for e in after["context"]["recent_timeline"])


def test_an_agent_session_does_not_open_the_operator_api(desk: Desk) -> None:
    operator_routes = [
        (method, path) for method, path, _ in desk.routes if path.startswith(("/api/", "/ops/api/"))
    ]
    assert len(operator_routes) > 10
    attempts = {
        "no credentials": (desk.client(), 401),
        "the agent's bearer token": (desk.agent(), 403),
        "the agent's cookie": (desk.client(cookies={COOKIE: desk.agent_token}), 401),
        "a wrong token": (desk.client(headers={"Authorization": "Bearer not-it"}), 403),
        "another scheme": (desk.client(headers={"Authorization": f"Basic {ADMIN_TOKEN}"}), 401),
    }
    for method, path in operator_routes:
        url = re.sub(r"{[a-z_]+}", "x", path)
        for what, (client, expected) in attempts.items():
            answer = client.request(method, url, json={})
            assert answer.status_code == expected, f"{what}: {method} {path}"
            assert answer.json()["detail"]
    # Control: the operator token itself is accepted.
    assert desk.admin().get("/api/identity/reviews").status_code == 200
