"""Desktop accounts and sessions: who may sign in, which queues they serve, and their role."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from omnirouter.redis_keys import DeskKeys

if TYPE_CHECKING:
    from omnirouter.pipeline.routing.store import RoutingStore

Role = Literal["agent", "supervisor"]
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Account(BaseModel):
    """An agent or supervisor who signs in to the desktop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,128}$")
    name: str = ""
    role: Role = "agent"
    queues: tuple[str, ...] = Field(default=(), description="Queues served; supervisors see all.")
    password_hash: str = ""

    def serves(self, queue_id: str | None) -> bool:
        """True when this account may see cases of ``queue_id``."""
        return self.role == "supervisor" or (queue_id is not None and queue_id in self.queues)


def hash_password(password: str) -> str:
    """scrypt with a random salt, as "scrypt$salt$hash" (hex)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """True when ``password`` hashes to ``stored`` (constant-time)."""
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in account."""

    account: Account
    tenant: str


class Accounts:
    """Accounts and sessions in Redis."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str, session_ttl_s: int) -> None:
        """Keys under ``key_prefix``; sessions expire after ``session_ttl_s`` of inactivity."""
        self._client = client
        self._prefix = key_prefix
        self._ttl = session_ttl_s

    def _keys(self, tenant: str) -> DeskKeys:
        return DeskKeys(self._prefix, tenant)

    async def save(self, account: Account, *, tenant: str, password: str | None = None) -> Account:
        """Create or update an account (a new password is hashed; none keeps the old one)."""
        if password is not None:
            account = account.model_copy(update={"password_hash": hash_password(password)})
        elif not account.password_hash:
            existing = await self.get(account.agent_id, tenant=tenant)
            if existing is not None:
                account = account.model_copy(update={"password_hash": existing.password_hash})
        await self._client.hset(
            self._keys(tenant).accounts, account.agent_id, account.model_dump_json()
        )
        return account

    async def get(self, agent_id: str, *, tenant: str) -> Account | None:
        """The account, or None."""
        raw = await self._client.hget(self._keys(tenant).accounts, agent_id)
        return Account.model_validate_json(raw) if raw else None

    async def all(self, *, tenant: str) -> list[Account]:
        """Every account of the tenant."""
        raw = await self._client.hgetall(self._keys(tenant).accounts)
        return sorted(
            (Account.model_validate_json(v) for v in raw.values()), key=lambda a: a.agent_id
        )

    async def sign_in(self, agent_id: str, password: str, *, tenant: str) -> str | None:
        """A new session token for valid credentials, else None."""
        account = await self.get(agent_id, tenant=tenant)
        if account is None or not password_matches(password, account.password_hash):
            return None
        token = secrets.token_urlsafe(32)
        value = orjson.dumps({"agent_id": agent_id, "tenant": tenant})
        await self._client.set(self._keys(tenant).session(_digest(token)), value, ex=self._ttl)
        return f"{tenant}.{token}"

    async def session(self, token: str) -> Session | None:
        """The session a token opens (refreshing its expiry), or None."""
        tenant, sep, secret = token.partition(".")
        if not sep or not secret:
            return None
        key = self._keys(tenant).session(_digest(secret))
        raw = await self._client.getex(key, ex=self._ttl)
        if raw is None:
            return None
        account = await self.get(orjson.loads(raw)["agent_id"], tenant=tenant)
        return Session(account, tenant) if account is not None else None

    async def sign_out(self, token: str) -> None:
        """End a session."""
        tenant, _, secret = token.partition(".")
        await self._client.delete(self._keys(tenant).session(_digest(secret)))


def _digest(secret: str) -> str:
    # Only a hash of the token is stored: a Redis dump does not hand out sessions.
    return hashlib.sha256(secret.encode()).hexdigest()


async def enrol(
    accounts: Accounts,
    routing: RoutingStore,
    account: Account,
    *,
    tenant: str,
    password: str | None,
    skills: Mapping[str, int],
    languages: Sequence[str],
) -> None:
    """Save a desktop account and the routing profile that lets cases be offered to it: the two
    go together (an account routing does not know is never offered anything)."""
    await accounts.save(account, tenant=tenant, password=password)
    await routing.upsert_agent(
        tenant,
        account.agent_id,
        profile={"name": account.name, "skills": dict(skills), "languages": list(languages)},
        now=datetime.now(UTC),
    )
