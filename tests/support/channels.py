"""Gateway settings for tests that build their own gateway (e.g. against their own broker)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from omnirouter.devstack import StackAddresses
from omnirouter.settings import IngressSettings, KafkaSettings, RedisSettings, Settings


def gateway_settings_for(
    addresses: StackAddresses, prefix: str, redis_prefix: str, **ingress: Any
) -> Settings:
    """Settings for a gateway on ``addresses`` with the test secrets of the channel tests."""
    values: dict[str, Any] = {
        "public_url": "https://cx.example.com",
        "twilio_auth_token": SecretStr("12345678901234567890123456789012"),
        **ingress,
    }
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=addresses.kafka_bootstrap_servers, topic_prefix=prefix
        ),
        redis=RedisSettings(url=addresses.redis_url, key_prefix=redis_prefix),
        ingress=IngressSettings(**values),
    )
