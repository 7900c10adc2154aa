"""What `omnirouter run` adds for a newcomer: a local provider, demo agents, simulated customers.

The demo is wired only through settings and public interfaces: the channel secrets the gateway
checks, the outbound provider the dispatcher calls, desktop accounts and routing profiles. The
router's own processes cannot tell demo traffic from real traffic — which is the point.
Settings the operator gave (a real Twilio account, an SMTP relay, signing secrets) are kept:
the demo only fills in what is missing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass

from omnirouter.demo.provider import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DemoProvider
from omnirouter.demo.simulator import DemoSimulator, DemoTargets
from omnirouter.desktop.accounts import Account, Accounts, enrol
from omnirouter.devstack.network import free_port
from omnirouter.events.models import DEFAULT_TENANT
from omnirouter.pipeline.routing.rules import RoutingRules
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.security import redis_client
from omnirouter.settings import Settings

DEMO_SIGNING_KEY_ID = "demo"
DEMO_SMS_FROM = "+15017122661"
_NAMES = {"alex": "Alex Rivera", "sam": "Sam Chen"}


@dataclass(frozen=True)
class DemoAgent:
    """A desktop account the banner prints, so a newcomer can sign in at once."""

    agent_id: str
    password: str
    name: str
    role: str


def demo_agent_profile(rules: RoutingRules) -> tuple[tuple[str, ...], dict[str, int], list[str]]:
    """Queues, skills and languages that let a demo agent take any case the rules route (pure).

    Every queue, every skill a queue asks for at the top level (5), every language a queue
    needs, and English: a demo agent must never be the reason a case waits.
    """
    queues = tuple(queue.id for queue in rules.queues)
    skills = {skill: 5 for queue in rules.queues for skill in queue.skills}
    languages = sorted({"en", *(lang for queue in rules.queues for lang in queue.languages)})
    return queues, skills, languages


class DemoSession:
    """The demo's parts, started around the router's own processes and stopped after them."""

    def __init__(self, settings: Settings) -> None:
        """Prepare the demo for ``settings`` (nothing runs until :meth:`start_provider`)."""
        self._settings = settings
        ingress = settings.ingress
        self._twilio_token = (
            ingress.twilio_auth_token.get_secret_value()
            if ingress.twilio_auth_token is not None
            else secrets.token_hex(16)
        )
        self._signing_secret = secrets.token_urlsafe(24)
        self.provider = DemoProvider(free_port(), free_port())
        self.simulator: DemoSimulator | None = None
        self.agents: list[DemoAgent] = []

    def start_provider(self) -> None:
        """Start the local provider (before the dispatcher, which delivers to it)."""
        self.provider.start()

    def child_environment(self) -> dict[str, str]:
        """Settings for `worker` and `serve`: the demo's channel secrets and local provider."""
        settings = self._settings
        signing = {
            key: secret.get_secret_value()
            for key, secret in settings.ingress.signing_secrets.items()
        }
        signing[DEMO_SIGNING_KEY_ID] = self._signing_secret
        env = {
            "OMNIROUTER_INGRESS__TWILIO_AUTH_TOKEN": self._twilio_token,
            "OMNIROUTER_INGRESS__SIGNING_SECRETS": json.dumps(signing),
        }
        outbound = settings.outbound
        if outbound.twilio_account_sid is None:
            env |= {
                "OMNIROUTER_OUTBOUND__TWILIO_API_BASE": self.provider.base_url,
                "OMNIROUTER_OUTBOUND__TWILIO_ACCOUNT_SID": DEMO_ACCOUNT_SID,
                "OMNIROUTER_OUTBOUND__TWILIO_AUTH_TOKEN": DEMO_AUTH_TOKEN,
                "OMNIROUTER_OUTBOUND__TWILIO_SMS_FROM": DEMO_SMS_FROM,
                "OMNIROUTER_OUTBOUND__TWILIO_WHATSAPP_FROM": f"whatsapp:{DEMO_SMS_FROM}",
            }
        if outbound.smtp_host is None:
            env |= {
                "OMNIROUTER_OUTBOUND__SMTP_HOST": "127.0.0.1",
                "OMNIROUTER_OUTBOUND__SMTP_PORT": str(self.provider.smtp_port),
            }
        return env

    def create_agents(self, redis_url: str, rules: RoutingRules) -> list[DemoAgent]:
        """Demo desktop accounts with fresh passwords, serving every queue of ``rules``."""
        self.agents = asyncio.run(self._create_agents(redis_url, rules))
        return self.agents

    async def _create_agents(self, redis_url: str, rules: RoutingRules) -> list[DemoAgent]:
        settings = self._settings
        queues, skills, languages = demo_agent_profile(rules)
        client = redis_client(settings.redis, redis_url)
        accounts = Accounts(
            client,
            key_prefix=settings.redis.key_prefix,
            session_ttl_s=settings.desktop.session_ttl_s,
        )
        routing = RoutingStore(client, key_prefix=settings.redis.key_prefix)
        created = []
        try:
            for index, agent_id in enumerate(settings.demo.agents):
                # The second demo account is a supervisor: it shows what a team lead sees.
                role = "supervisor" if index == 1 else "agent"
                name = _NAMES.get(agent_id, agent_id.title())
                password = secrets.token_hex(4)
                account = Account(agent_id=agent_id, name=name, role=role, queues=queues)
                await enrol(
                    accounts,
                    routing,
                    account,
                    tenant=DEFAULT_TENANT,
                    password=password,
                    skills=skills,
                    languages=languages,
                )
                created.append(DemoAgent(agent_id, password, name, role))
        finally:
            await client.aclose()
        return created

    def start_simulator(self, *, api_port: int, smtp_port: int | None) -> None:
        """Start sending simulated customers' messages to the running gateway."""
        settings = self._settings
        host = settings.api.host
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared, not bound
        base_url = f"http://{local}:{api_port}"
        targets = DemoTargets(
            base_url=base_url,
            smtp_port=smtp_port,
            webhook_base_url=(settings.ingress.public_url or base_url).rstrip("/"),
            twilio_token=self._twilio_token,
            signing_key_id=DEMO_SIGNING_KEY_ID,
            signing_secret=self._signing_secret,
        )
        self.simulator = DemoSimulator(targets, interval_s=settings.demo.interval_s)
        self.simulator.start()

    def stop_simulator(self) -> None:
        """Stop sending (first, so nothing is sent to processes that are stopping)."""
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None

    def stop_provider(self) -> None:
        """Stop the provider (last, after the dispatcher finished its deliveries)."""
        self.provider.stop()
