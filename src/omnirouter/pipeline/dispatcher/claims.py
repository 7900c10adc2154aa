"""Sending each reply once: a Redis claim per event id, holding the outcome afterwards.

A dispatcher claims an event before sending it (``sending``, with a lease as long as the
longest delivery) and stores the outcome (``sent`` or ``failed``) for
``OutboundSettings.claim_ttl_s``. A redelivered event that finds ``sent`` is reported again
but not sent again; one that finds ``failed`` is tried again, since the customer never got it;
one that finds ``sending`` waits for the holder (a dispatcher that lost its partition in a
rebalance) to finish, or for the lease of a crashed one to run out.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis

from omnirouter.pipeline.dispatcher.delivery import DeliveryOutcome
from omnirouter.redis_keys import dispatch_claim_key

# Claims the key unless it records a delivery that is done ("sent") or under way ("sending");
# returns what it found then, nil once claimed. One key: runs unchanged on Redis Cluster.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and (doc.status == 'sent' or doc.status == 'sending') then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""


class DispatchClaims:
    """Claims and outcomes of deliveries, one Redis key per outbound event."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key_prefix: str,
        ttl_s: int,
        lease_s: float,
        poll_s: float = 0.2,
    ) -> None:
        """Claims last ``lease_s`` while sending; outcomes are kept ``ttl_s``."""
        self._redis = redis
        self._prefix = key_prefix
        self._ttl_s = ttl_s
        self._lease_ms = max(1, int(lease_s * 1000))
        self._poll_s = poll_s
        self._claim = redis.register_script(_CLAIM)
        self.contended = 0
        """How many claims were found under way elsewhere (each waited for)."""

    def _key(self, event_id: uuid.UUID) -> str:
        return dispatch_claim_key(self._prefix, str(event_id))

    async def claim(self, event_id: uuid.UUID) -> DeliveryOutcome | None:
        """Claim the delivery of ``event_id``.

        Returns:
            None when this dispatcher is now to send it; the recorded outcome when it was
            sent already (and must not be sent again).
        """
        claim = orjson.dumps({"status": "sending", "claim": uuid.uuid4().hex})
        waited = False
        while True:
            found: Any = await self._claim(keys=[self._key(event_id)], args=[claim, self._lease_ms])
            if found is None:
                return None
            doc = orjson.loads(found)
            if doc.get("status") == "sent":
                return DeliveryOutcome(
                    delivered=True,
                    provider=str(doc.get("provider") or "omnirouter"),
                    message_id=doc.get("message_id"),
                    status=str(doc.get("delivery") or "sent"),
                )
            if not waited:
                waited = True
                self.contended += 1
            # Under way elsewhere: wait in real time, as the holder's lease runs in real time.
            await asyncio.sleep(self._poll_s)

    async def record(self, event_id: uuid.UUID, outcome: DeliveryOutcome) -> None:
        """Store how delivering ``event_id`` ended, releasing the claim."""
        doc = {
            "status": "sent" if outcome.delivered else "failed",
            "delivery": outcome.status,
            "provider": outcome.provider,
            "message_id": outcome.message_id,
            "reason": outcome.reason,
            "attempts": outcome.attempts,
        }
        await self._redis.set(self._key(event_id), orjson.dumps(doc), ex=self._ttl_s)
