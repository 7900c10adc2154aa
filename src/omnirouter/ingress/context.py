"""What every channel's routes get from the gateway."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from omnirouter.ingress.intake import Intake
from omnirouter.settings import Settings


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """The gateway's shared parts: intake (publish with guarantees), settings, Redis."""

    intake: Intake
    settings: Settings
    redis: aioredis.Redis
