"""The one place where security settings become client options, for every client library.

Kafka is reached through three libraries (kafka-python for producers, admin and operator
reads; aiokafka for the desktop's live feed; faust-streaming, itself on aiokafka, for the
workers) and Redis through redis-py. Each spells SASL and TLS differently; these functions
translate :class:`~omnirouter.settings.KafkaSettings` and
:class:`~omnirouter.settings.RedisSettings` so that a new client only has to call one of them.
Secrets leave their ``SecretStr`` here and nowhere else.
"""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import redis as sync_redis
    import redis.asyncio as aioredis
    from faust.types.auth import CredentialsT

    from omnirouter.settings import KafkaSettings, RedisSettings

__all__ = [
    "aiokafka_security",
    "faust_broker_credentials",
    "kafka_python_security",
    "kafka_settings_problem",
    "kafka_ssl_context",
    "redis_client",
    "redis_client_options",
    "redis_settings_problem",
    "redis_sync_client",
]


def kafka_settings_problem(kafka: KafkaSettings) -> str | None:
    """What makes these Kafka settings unusable, in one sentence; None when they are fine."""
    sasl, tls = _uses_sasl(kafka), _uses_tls(kafka)
    if sasl and (not kafka.sasl_username or kafka.sasl_password is None):
        return f"security_protocol {kafka.security_protocol} needs sasl_username and sasl_password"
    if not sasl and (kafka.sasl_username or kafka.sasl_password is not None):
        # Credentials with a non-SASL protocol would be silently ignored: say so instead.
        return (
            "sasl_username/sasl_password are set but security_protocol is "
            f"{kafka.security_protocol} (use SASL_SSL or SASL_PLAINTEXT)"
        )
    files = (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile)
    if not tls and any(f is not None for f in files):
        return (
            f"ssl_* files are set but security_protocol is {kafka.security_protocol} "
            "(use SSL or SASL_SSL)"
        )
    if kafka.ssl_keyfile is not None and kafka.ssl_certfile is None:
        return "ssl_keyfile needs ssl_certfile (the client certificate)"
    replicas, min_insync = kafka.replication_factor, kafka.min_insync_replicas
    if replicas is not None and min_insync is not None and min_insync > replicas:
        return (
            f"min_insync_replicas {min_insync} is more than replication_factor {replicas}: "
            "no acks=all write could ever succeed"
        )
    return None


def redis_settings_problem(redis: RedisSettings) -> str | None:
    """What makes these Redis settings unusable, in one sentence; None when they are fine."""
    if redis.url is not None and urlsplit(redis.url).password is not None:
        # The URL is printed (omnirouter check, logs); the password has a masked setting.
        return "url must not contain a password: set password (and username) instead"
    files = (redis.ssl_ca_certs, redis.ssl_certfile, redis.ssl_keyfile)
    if any(f is not None for f in files) and not (redis.url or "").startswith("rediss://"):
        return "ssl_* files need a rediss:// url (TLS)"
    if redis.ssl_keyfile is not None and redis.ssl_certfile is None:
        return "ssl_keyfile needs ssl_certfile (the client certificate)"
    return None


def _uses_tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _password(kafka: KafkaSettings) -> str | None:
    return None if kafka.sasl_password is None else kafka.sasl_password.get_secret_value()


def kafka_python_security(kafka: KafkaSettings | None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient.

    Empty for PLAINTEXT (and for ``None``), so a plain local broker gets exactly the
    clients it had before security settings existed.
    """
    if kafka is None or kafka.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if _uses_tls(kafka):
        # kafka-python builds its own SSLContext from these (system CAs when no cafile).
        options["ssl_check_hostname"] = kafka.ssl_check_hostname
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka, name)
            if path is not None:
                options[name] = str(path)
    if _uses_sasl(kafka):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = _password(kafka)
    return options


def kafka_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka and faust (None unless the protocol is SSL or SASL_SSL)."""
    if not _uses_tls(kafka):
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=None if kafka.ssl_cafile is None else str(kafka.ssl_cafile),
    )
    if kafka.ssl_certfile is not None:
        context.load_cert_chain(
            str(kafka.ssl_certfile),
            None if kafka.ssl_keyfile is None else str(kafka.ssl_keyfile),
        )
    context.check_hostname = kafka.ssl_check_hostname
    return context


def aiokafka_security(kafka: KafkaSettings | None) -> dict[str, Any]:
    """Keyword arguments for aiokafka's AIOKafkaConsumer / AIOKafkaProducer."""
    if kafka is None or kafka.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = kafka_ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if _uses_sasl(kafka):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = _password(kafka)
    return options


def faust_broker_credentials(kafka: KafkaSettings | None) -> CredentialsT | None:
    """faust's ``broker_credentials``: SASLCredentials, SSLCredentials, or None for PLAINTEXT.

    faust derives the protocol from the credentials: SASL with an SSL context is SASL_SSL,
    without one SASL_PLAINTEXT.
    """
    if kafka is None or kafka.security_protocol == "PLAINTEXT":
        return None
    import faust  # only workers pay for importing faust

    context = kafka_ssl_context(kafka)
    if _uses_sasl(kafka):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=_password(kafka),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    # SSL: faust's SSLCredentials cannot build a context itself without a purpose; give it ours.
    return faust.SSLCredentials(context)


def redis_client_options(redis: RedisSettings | None) -> dict[str, Any]:
    """Keyword arguments for redis-py's ``Redis.from_url`` (sync and asyncio alike).

    TLS itself is chosen by the URL's ``rediss://`` scheme; the ``ssl_*`` files only say which
    CA to trust and which client certificate to present.
    """
    if redis is None:
        return {}
    options: dict[str, Any] = {}
    if redis.username is not None:
        options["username"] = redis.username
    if redis.password is not None:
        options["password"] = redis.password.get_secret_value()
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        path = getattr(redis, name)
        if path is not None:
            options[name] = str(path)
    return options


def redis_client(redis: RedisSettings | None, url: str, **overrides: Any) -> aioredis.Redis:
    """The asyncio Redis client every omnirouter process uses: the one place clients are made.

    With ``redis.cluster`` it is a :class:`redis.asyncio.RedisCluster` that discovers the other
    nodes from ``url`` and follows slot moves and failovers. It is returned as the
    ``Redis`` type on purpose: omnirouter keeps every script, transaction and multi-key command
    on one hash slot (see ``redis_keys``), so the commands it sends mean the same on both, and
    one annotation keeps every store's signature the same for a single node and a cluster.
    """
    import redis.asyncio as aioredis

    options = {**redis_client_options(redis), **overrides}
    if redis is not None and redis.cluster:
        return cast("aioredis.Redis", aioredis.RedisCluster.from_url(url, **options))
    return aioredis.Redis.from_url(url, **options)


def redis_sync_client(redis: RedisSettings | None, url: str, **overrides: Any) -> sync_redis.Redis:
    """The synchronous twin of :func:`redis_client` (CLI checks, tools, benchmarks)."""
    import redis as sync_redis

    options = {**redis_client_options(redis), **overrides}
    if redis is not None and redis.cluster:
        return cast("sync_redis.Redis", _sync_cluster_class().from_url(url, **options))
    return sync_redis.Redis.from_url(url, **options)


@functools.cache
def _sync_cluster_class() -> type[Any]:
    """redis-py's ``RedisCluster`` whose ``close()`` also closes its nodes' connections.

    A cluster client made by ``from_url`` gives each node a connection pool its node client
    does not own, and ``RedisCluster.close()`` (redis-py 8.1) only closes the node clients:
    their sockets stay open until garbage collection finds them, and warns.
    """
    import redis as sync_redis

    class ClosingRedisCluster(sync_redis.RedisCluster):
        def close(self) -> None:
            super().close()
            self.disconnect_connection_pools()  # type: ignore[no-untyped-call]  # untyped in redis-py

    return ClosingRedisCluster
