"""One tenant's data never appears in another's desktop, operator API or metrics.

Two tenants, acme and globex, run on one router (``omnirouter worker`` + ``serve`` as
processes) with the same queue ids, the same agent ids and a customer with the same e-mail
address and phone number in each. Traffic enters as InteractionEvents published with the SDK
(the signed provider webhooks all land in the default tenant; only the web chat socket takes a
tenant), and every surface is then read with one tenant's credentials.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from omnirouter.desktop.live import notice_from
from omnirouter.devstack import StackAddresses
from omnirouter.ops.metrics import REGISTRY, count_sla_breach
from omnirouter.sdk import Publisher
from support.fake_providers import serve_fake_providers
from support.full_stack import ADMIN_TOKEN, TENANT_TOKENS, RunningRouter, running_router
from support.waiting import eventually

pytestmark = pytest.mark.integration

RULES = """
queues:
  - id: general
    offer_timeout_s: 300
  - id: billing
rules: []
default_queue: general
"""
EMAIL = {"kind": "email", "value": "ana@example.com"}
PHONE = {"kind": "phone", "value": "+15550102345"}
OTHER_SECRET = "globex-only: invoice 4711 is overdue"


@pytest.fixture
def router(
    stack: StackAddresses, unique_id: str, redis_prefix: str, tmp_path: Path
) -> Iterator[RunningRouter]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with (
        serve_fake_providers() as providers,
        running_router(
            stack,
            prefix=f"test.{unique_id}.",
            redis_prefix=redis_prefix,
            providers=providers,
            rules_file=rules,
            logs=tmp_path / "logs",
        ) as running,
    ):
        yield running


class LiveNotices:
    """One agent's server-sent events, read on a thread until closed."""

    def __init__(self, base_url: str, token: str) -> None:
        self.notices: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30, read=None),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # Closing the client from the test's thread ends the read with an error: expected.
        with contextlib.suppress(Exception), self._client.stream("GET", "/desk/api/events") as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    self.notices.append(json.loads(line.removeprefix("data: ")))

    def about(self, case_id: str) -> list[dict[str, Any]]:
        return [n for n in list(self.notices) if n.get("case_id") == case_id]

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=30)


def operator(router: RunningRouter, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=router.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def desk_login(router: RunningRouter, agent_id: str, password: str, tenant: str) -> str:
    answer = httpx.post(
        f"{router.base_url}/desk/api/login",
        json={"agent_id": agent_id, "password": password, "tenant": tenant},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def desk(router: RunningRouter, token: str) -> httpx.Client:
    return operator(router, token)


def waiting_case(agent: httpx.Client) -> dict[str, Any] | None:
    for queue in agent.get("/desk/api/queues").json():
        if queue["queue_id"] == "general" and queue["waiting"]:
            found: dict[str, Any] = queue["waiting"][0]
            return found
    return None


@pytest.mark.timeout(400)
def test_two_tenants_with_the_same_ids_never_see_each_other(
    router: RunningRouter, stack: StackAddresses
) -> None:
    """Desk, operator API, erasure, /ops summary and /metrics, each read with acme's
    credentials, show nothing of globex's (and the platform operator still sees both)."""
    for tenant in ("acme", "globex"):
        router.add_agent("ava", f"ava-{tenant}", queues="general", tenant=tenant)
        router.add_agent("bob", f"bob-{tenant}", queues="general", tenant=tenant)
    router.add_agent("sue", "sue-acme", role="supervisor", tenant="acme")
    acme_ava = desk(router, desk_login(router, "ava", "ava-acme", "acme"))
    acme_sue = desk(router, desk_login(router, "sue", "sue-acme", "acme"))
    other_ava_token = desk_login(router, "ava", "ava-globex", "globex")
    other_ava = desk(router, other_ava_token)
    other_bob = desk(router, desk_login(router, "bob", "bob-globex", "globex"))
    acme_live = LiveNotices(router.base_url, acme_ava.headers["Authorization"][7:])
    other_live = LiveNotices(router.base_url, other_ava_token)
    acme_api, other_api, platform = (
        operator(router, TENANT_TOKENS["acme"]),
        operator(router, TENANT_TOKENS["globex"]),
        operator(router, ADMIN_TOKEN),
    )
    clients = [acme_ava, acme_sue, other_ava, other_bob, acme_api, other_api, platform]
    try:
        assert acme_live.connected.wait(30) and other_live.connected.wait(30)
        # globex's agents are available (its case is offered to its "ava"); acme's are not
        # (its case waits in its "general" queue): the same ids in different states.
        for client in (other_ava, other_bob):
            answer = client.post("/desk/api/presence", json={"presence": "available"})
            assert answer.status_code == 204

        with Publisher(stack.kafka_bootstrap_servers, topic_prefix=router.prefix) as publisher:
            publisher.publish_message(
                channel="email",
                provider="test",
                sender=EMAIL,
                more_identifiers=[PHONE],
                text=OTHER_SECRET,
                tenant="globex",
                message_id="globex-1",
            )
            offers = eventually(
                lambda: other_ava.get("/desk/api/offers").json(),
                timeout_s=60,
                what="globex's offer to its ava",
            )
            other_case = offers[0]["case_id"]
            # Seen on globex's live feed: dispatched while acme's feed was open too.
            eventually(lambda: other_live.about(other_case), timeout_s=30, what="globex notice")
            publisher.publish_message(
                channel="email",
                provider="test",
                sender=EMAIL,
                more_identifiers=[PHONE],
                text="acme: where is my parcel?",
                tenant="acme",
                message_id="acme-1",
            )
            waiting = eventually(
                lambda: waiting_case(acme_ava), timeout_s=60, what="acme's waiting case"
            )
        acme_case, acme_customer = waiting["case_id"], waiting["customer_id"]
        eventually(lambda: acme_live.about(acme_case), timeout_s=30, what="acme notice")
        other_customer = other_ava.get(f"/desk/api/cases/{other_case}").json()["case"][
            "customer_id"
        ]

        # Identity is per tenant: the same e-mail and phone are two different customers.
        assert acme_customer != other_customer
        for api, customer in ((acme_api, acme_customer), (other_api, other_customer)):
            found = api.get(f"/api/identity/customers/{customer}")
            assert found.status_code == 200, found.text  # the token's own tenant by default
            assert {i["value"] for i in found.json()["identifiers"]} >= {EMAIL["value"]}

        check_desk(acme_ava, acme_sue, acme_live, acme_case, other_case, other_customer)
        check_operator_api(acme_api, platform, acme_case, other_case, other_customer)
        check_ops(router, acme_api, platform)
        check_erasure(acme_api, other_api, platform, other_customer)
    finally:
        acme_live.close()
        other_live.close()
        for client in clients:
            client.close()


def check_desk(
    ava: httpx.Client,
    supervisor: httpx.Client,
    live: LiveNotices,
    own_case: str,
    other_case: str,
    other_customer: str,
) -> None:
    """acme's agent and supervisor see acme's case and nothing of globex's."""
    assert ava.get("/desk/api/me").json()["tenant"] == "acme"
    for client in (ava, supervisor):
        queues = client.get("/desk/api/queues").json()
        listed = {c["case_id"] for q in queues for c in q["waiting"]}
        assert own_case in listed and other_case not in listed
        assert other_case not in client.get("/desk/api/offers").text
        assert other_case not in client.get("/desk/api/cases").text
        # Another tenant's case answers as one that does not exist, on every case route.
        assert client.get(f"/desk/api/cases/{other_case}").status_code == 404
        assert client.get(f"/desk/api/cases/{other_case}/timeline").status_code == 404
        for action, body in (
            ("reply", {"text": "hi"}),
            ("notes", {"text": "peek"}),
            ("transfer", {"queue": "general"}),
            ("resolve", {"reason": "x"}),
        ):
            answer = client.post(f"/desk/api/cases/{other_case}/{action}", json=body)
            assert answer.status_code == 404, (action, answer.text)
        # Offers answer 409 "no open offer" for a case never offered to this agent.
        assert client.post(f"/desk/api/offers/{other_case}/accept").status_code == 409
    own = ava.get(f"/desk/api/cases/{own_case}/timeline").json()
    assert [t["text"] for t in own if t["kind"] == "message"] == ["acme: where is my parcel?"]
    targets = ava.get("/desk/api/transfer-targets").json()
    # acme's "bob" is offline; globex's "bob" (available) must not lend him its presence.
    assert {(a["agent_id"], a["presence"]) for a in targets["agents"]} == {
        ("bob", "offline"),
        ("sue", "offline"),
    }
    notices = list(live.notices)
    assert notices, "acme's live feed carried acme's notices"
    assert {n["tenant"] for n in notices} == {"acme"}
    assert not [
        n for n in notices if other_case in json.dumps(n) or other_customer in json.dumps(n)
    ]


def check_operator_api(
    acme: httpx.Client,
    platform: httpx.Client,
    own_case: str,
    other_case: str,
    other_customer: str,
) -> None:
    """acme's token cannot read globex's data, by id (404) or by naming globex (403)."""
    for path in (
        f"/api/identity/customers/{other_customer}",
        f"/api/customers/{other_customer}",
        f"/api/customers/{other_customer}/cases",
        f"/api/cases/{other_case}",
    ):
        assert acme.get(path).status_code == 404, path
        refused = acme.get(path, params={"tenant": "globex"})
        assert refused.status_code == 403, path
        assert "globex" in refused.json()["detail"]  # says why, names only what was asked
        assert platform.get(path, params={"tenant": "globex"}).status_code == 200, path
    for path in ("/api/agents", "/api/queues/general/waiting", "/api/identity/reviews"):
        assert acme.get(path, params={"tenant": "globex"}).status_code == 403, path
    agents = acme.get("/api/agents").json()
    assert {(a["agent_id"], a["presence"]) for a in agents} == {
        ("ava", "offline"),
        ("bob", "offline"),
        ("sue", "offline"),
    }
    assert [c["case_id"] for c in acme.get("/api/queues/general/waiting").json()] == [own_case]
    changed = acme.post(
        f"/api/cases/{other_case}/status", params={"tenant": "globex"}, json={"reason": "x"}
    )
    assert changed.status_code == 403
    # The platform token keeps its behaviour: no tenant named is the default tenant.
    assert platform.get("/api/agents").json() == []
    assert {a["agent_id"] for a in platform.get("/api/agents?tenant=globex").json()} == {
        "ava",
        "bob",
    }


def check_ops(router: RunningRouter, acme: httpx.Client, platform: httpx.Client) -> None:
    """/ops/api/summary shows acme's token acme's queues and agents only; /metrics keeps
    every per-queue and per-agent series to one tenant."""

    def both_tenants_sampled() -> dict[str, Any] | None:
        summary: dict[str, Any] = platform.get("/ops/api/summary").json()
        depths = {(q["tenant"], q["queue"]): q["depth"] for q in summary["queues"]}
        # Sampled after acme's case was queued (the dashboard samples on a tick).
        ready = depths.get(("acme", "general")) == 1 and ("globex", "general") in depths
        return summary if ready else None

    everything = eventually(both_tenants_sampled, timeout_s=60, what="both tenants sampled")
    assert {a["tenant"] for a in everything["agents"]} >= {"acme", "globex"}
    mine = acme.get("/ops/api/summary")
    assert mine.status_code == 200, mine.text
    assert "globex" not in mine.text
    body = mine.json()
    assert body["tenant"] == "acme"
    assert {(q["tenant"], q["queue"], q["depth"]) for q in body["queues"]} == {
        ("acme", "general", 1),
        ("acme", "billing", 0),
    }
    assert {a["tenant"] for a in body["agents"]} == {"acme"}
    assert all(k.startswith("acme/") for p in body["history"] for k in p["queues"])
    assert "throughput" in body and "lag" in body  # platform-wide, names no tenant
    assert acme.get("/ops/api/summary", params={"tenant": "globex"}).status_code == 403

    families = {
        f.name: f
        for f in text_string_to_metric_families(
            httpx.get(f"{router.base_url}/metrics", timeout=30).text
        )
    }
    per_tenant = [n for n in families if n.startswith(("omnirouter_queue_", "omnirouter_agents"))]
    assert len(per_tenant) == 4
    values = {}
    for name in per_tenant:
        for sample in families[name].samples:
            assert sample.labels.get("tenant"), (name, sample.labels)
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    depth = "omnirouter_queue_depth"
    assert values[(depth, (("queue", "general"), ("tenant", "acme")))] == 1
    assert values[(depth, (("queue", "general"), ("tenant", "globex")))] == 0  # offered
    available = (("presence", "available"), ("tenant", "acme"))
    assert values[("omnirouter_agents", available)] == 0
    assert values[("omnirouter_agents", (("presence", "available"), ("tenant", "globex")))] == 2


def check_erasure(
    acme: httpx.Client, other: httpx.Client, platform: httpx.Client, other_customer: str
) -> None:
    """acme's token cannot erase globex's customer; globex's customer stays whole."""
    path = f"/api/identity/customers/{other_customer}"
    assert acme.delete(path).status_code == 404
    assert acme.delete(path, params={"tenant": "globex"}).status_code == 403
    assert other.get(path).status_code == 200
    assert platform.get(path, params={"tenant": "globex"}).status_code == 200


def test_sla_breaches_are_counted_per_tenant() -> None:
    """The same queue id breached in two tenants makes two series, never one sum."""

    def breaches(tenant: str) -> float:
        labels = {"tenant": tenant, "queue": "t-shared"}
        return REGISTRY.get_sample_value("omnirouter_sla_breaches_total", labels) or 0.0

    before = (breaches("acme"), breaches("globex"))
    count_sla_breach("t-shared", tenant="acme")
    count_sla_breach("t-shared", tenant="acme")
    count_sla_breach("t-shared", tenant="globex")
    assert (breaches("acme") - before[0], breaches("globex") - before[1]) == (2, 1)


def test_a_live_notice_always_names_its_tenant() -> None:
    """An event without a tenant is the default tenant's notice, never one for everyone."""
    untagged = notice_from("cases.events", b'{"case": {"case_id": "c1", "queue": "general"}}')
    tagged = notice_from("routing.decisions", b'{"case_id": "c2", "tenant": "acme"}')
    assert untagged is not None and untagged["tenant"] == "default"
    assert tagged is not None and tagged["tenant"] == "acme"
