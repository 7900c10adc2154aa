"""Security settings: each Kafka protocol and SASL mechanism, and Redis ACL/TLS, reach every
client library as the options it expects; incomplete combinations are refused with a reason;
secrets never show in a repr, an error or `omnirouter check`."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import ValidationError

from omnirouter.devstack.network import free_port
from omnirouter.errors import ConfigurationError
from omnirouter.events.topics import TOPICS
from omnirouter.pipeline.app import create_app
from omnirouter.runtime import catalogue_topics
from omnirouter.security import (
    aiokafka_security,
    faust_broker_credentials,
    kafka_python_security,
    kafka_ssl_context,
    redis_client_options,
)
from omnirouter.settings import KafkaSettings, RedisSettings, Settings, load_settings
from support.settings_env import clear_ambient_settings

SECRET = "pa55-w0rd-that-must-never-print"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate and its key (PEM), standing in for a CA and a client cert."""
    where = tmp_path_factory.mktemp("pki")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return {"ca": cert, "cert": cert, "key": key}


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient_settings(monkeypatch)


def _sasl(protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512", **more: Any) -> Any:
    return KafkaSettings(
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_mechanism=mechanism,  # type: ignore[arg-type]
        sasl_username="omnirouter",
        sasl_password=SECRET,  # type: ignore[arg-type]
        **more,
    )


# -- Kafka: what each library receives ---------------------------------------------------


def test_plaintext_adds_nothing_to_any_client() -> None:
    kafka = KafkaSettings()
    assert kafka_python_security(kafka) == {}
    assert aiokafka_security(kafka) == {}
    assert faust_broker_credentials(kafka) is None
    assert kafka_python_security(None) == {} and redis_client_options(None) == {}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_ssl_gives_kafka_python_scram_credentials_and_tls(mechanism: str) -> None:
    options = kafka_python_security(_sasl("SASL_SSL", mechanism))
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "omnirouter",
        "sasl_plain_password": SECRET,
        "ssl_check_hostname": True,
    }


def test_sasl_plaintext_gives_kafka_python_no_tls_options() -> None:
    options = kafka_python_security(_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256"))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert not any(name.startswith("ssl_") for name in options)


def test_ssl_with_mutual_tls_passes_the_files_to_kafka_python(pki: dict[str, Path]) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki["ca"],
        ssl_certfile=pki["cert"],
        ssl_keyfile=pki["key"],
        ssl_check_hostname=False,
    )
    assert kafka_python_security(kafka) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": False,
        "ssl_cafile": str(pki["ca"]),
        "ssl_certfile": str(pki["cert"]),
        "ssl_keyfile": str(pki["key"]),
    }


@pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer, KafkaAdminClient])
def test_every_kafka_python_option_is_one_the_client_knows(
    client: Any, pki: dict[str, Path]
) -> None:
    """A misspelt option would make kafka-python raise at start-up on the production cluster."""
    full = _sasl("SASL_SSL", ssl_cafile=pki["ca"], ssl_certfile=pki["cert"], ssl_keyfile=pki["key"])
    assert set(kafka_python_security(full)) <= set(client.DEFAULT_CONFIG)


def test_tls_context_trusts_the_configured_ca_and_presents_the_client_cert(
    pki: dict[str, Path],
) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki["ca"],
        ssl_certfile=pki["cert"],
        ssl_keyfile=pki["key"],
    )
    context = kafka_ssl_context(kafka)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "localhost"),),)]
    assert kafka_ssl_context(_sasl("SASL_PLAINTEXT")) is None


async def test_aiokafka_gets_an_ssl_context_and_scram_credentials() -> None:
    from aiokafka import AIOKafkaConsumer

    options = aiokafka_security(_sasl("SASL_SSL", "SCRAM-SHA-256"))
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "omnirouter",
        SECRET,
    )
    # aiokafka checks the combination when the consumer is built (no connection yet).
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **options)
    await consumer.stop()


@pytest.mark.parametrize(
    ("protocol", "mechanism", "expected"),
    [
        ("SASL_SSL", "SCRAM-SHA-512", AuthProtocol.SASL_SSL),
        ("SASL_SSL", "SCRAM-SHA-256", AuthProtocol.SASL_SSL),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256", AuthProtocol.SASL_PLAINTEXT),
        ("SASL_PLAINTEXT", "PLAIN", AuthProtocol.SASL_PLAINTEXT),
    ],
)
def test_faust_workers_get_sasl_credentials_with_the_right_protocol(
    protocol: str, mechanism: str, expected: AuthProtocol
) -> None:
    app = create_app("security-test", "127.0.0.1:9", security=_sasl(protocol, mechanism))
    credentials = app.conf.broker_credentials
    assert credentials.protocol is expected
    assert credentials.mechanism is SASLMechanism(mechanism)
    # What faust's aiokafka driver finally hands to its consumer and producer.
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == protocol
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("omnirouter", SECRET)
    assert (auth["ssl_context"] is not None) == (protocol == "SASL_SSL")
    assert SECRET not in repr(credentials)


def test_faust_workers_get_ssl_credentials_for_tls_only(pki: dict[str, Path]) -> None:
    app = create_app(
        "security-test",
        "127.0.0.1:9",
        security=KafkaSettings(security_protocol="SSL", ssl_cafile=pki["ca"]),
    )
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_faust_declares_its_own_topics_with_the_cluster_replication() -> None:
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=2)
    assert (
        create_app("security-test", "127.0.0.1:9", security=kafka).conf.topic_replication_factor
        == 3
    )
    assert create_app("security-test", "127.0.0.1:9").conf.topic_replication_factor == 1


# -- Redis ----------------------------------------------------------------------------------


def test_redis_acl_user_and_tls_files_reach_redis_py(pki: dict[str, Path]) -> None:
    settings = RedisSettings(
        url="rediss://redis.example.com:6380/0",
        username="omnirouter",
        password=SECRET,  # type: ignore[arg-type]
        ssl_ca_certs=pki["ca"],
        ssl_certfile=pki["cert"],
        ssl_keyfile=pki["key"],
    )
    options = redis_client_options(settings)
    assert options == {
        "username": "omnirouter",
        "password": SECRET,
        "ssl_ca_certs": str(pki["ca"]),
        "ssl_certfile": str(pki["cert"]),
        "ssl_keyfile": str(pki["key"]),
    }
    for client in (redis.Redis, aioredis.Redis):
        pool = client.from_url(settings.url, **options).connection_pool
        assert pool.connection_class.__name__ == "SSLConnection"
        assert pool.connection_kwargs["username"] == "omnirouter"
        assert pool.connection_kwargs["password"] == SECRET
        assert pool.connection_kwargs["ssl_ca_certs"] == str(pki["ca"])


def test_redis_without_security_settings_adds_nothing() -> None:
    assert redis_client_options(RedisSettings(url="redis://127.0.0.1:6379/0")) == {}


# -- Refused combinations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs sasl_username and sasl_password"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "omnirouter"},
            "needs sasl_username and sasl_password",
        ),
        (
            {"sasl_username": "omnirouter", "sasl_password": SECRET},
            "security_protocol is PLAINTEXT (use SASL_SSL or SASL_PLAINTEXT)",
        ),
        ({"ssl_cafile": "CA"}, "ssl_* files are set but security_protocol is PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_keyfile": "KEY"}, "ssl_keyfile needs ssl_certfile"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "does not point to a file",
        ),
        ({"sasl_mechanism": "GSSAPI"}, "SCRAM-SHA-256"),
        ({"security_protocol": "SASL"}, "PLAINTEXT"),
        ({"replication_factor": 1, "min_insync_replicas": 2}, "more than replication_factor 1"),
        ({"replication_factor": 0}, "greater than or equal to 1"),
    ],
)
def test_incomplete_kafka_security_is_refused_with_a_reason(
    values: dict[str, Any], reason: str, pki: dict[str, Path]
) -> None:
    real = {"CA": str(pki["ca"]), "KEY": str(pki["key"])}
    values = {key: real.get(value, value) for key, value in values.items()}
    with pytest.raises(ValidationError, match=re.escape(reason)) as caught:
        KafkaSettings(**values)
    assert SECRET not in str(caught.value.errors(include_input=False))


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"url": f"redis://omnirouter:{SECRET}@redis:6379/0"}, "must not contain a password"),
        ({"url": "redis://redis:6379/0", "ssl_ca_certs": "CA"}, "need a rediss:// url"),
        ({"ssl_ca_certs": "CA"}, "need a rediss:// url"),
        ({"url": "rediss://redis:6380", "ssl_keyfile": "KEY"}, "ssl_keyfile needs ssl_certfile"),
        (
            {"url": "rediss://redis:6380", "ssl_certfile": "/nonexistent.pem"},
            "does not point to a file",
        ),
    ],
)
def test_incomplete_redis_security_is_refused_with_a_reason(
    values: dict[str, Any], reason: str, pki: dict[str, Path]
) -> None:
    real = {"CA": str(pki["ca"]), "KEY": str(pki["key"])}
    values = {key: real.get(value, value) for key, value in values.items()}
    with pytest.raises(ValidationError, match=reason):
        RedisSettings(**values)


def test_a_refused_setting_is_one_line_naming_the_section_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIROUTER_KAFKA__SASL_USERNAME", "omnirouter")
    monkeypatch.setenv("OMNIROUTER_KAFKA__SASL_PASSWORD", SECRET)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid setting OMNIROUTER_KAFKA:")
    assert "use SASL_SSL or SASL_PLAINTEXT" in message
    assert SECRET not in message


# -- Secrets stay secret --------------------------------------------------------------------


def test_secrets_are_masked_in_repr_str_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("OMNIROUTER_KAFKA__SASL_USERNAME", "omnirouter")
    monkeypatch.setenv("OMNIROUTER_KAFKA__SASL_PASSWORD", SECRET)
    monkeypatch.setenv("OMNIROUTER_REDIS__USERNAME", "omnirouter")
    monkeypatch.setenv("OMNIROUTER_REDIS__PASSWORD", SECRET + "-redis")
    settings = load_settings()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == SECRET
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.kafka)):
        assert SECRET not in shown
        assert "**********" in shown


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", "check"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_omnirouter_check_never_prints_the_secrets() -> None:
    """A check that fails (nothing listens) still names the address, never the password."""
    result = _check(
        {
            "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "OMNIROUTER_KAFKA__CONNECT_TIMEOUT_S": "0.5",
            "OMNIROUTER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "OMNIROUTER_KAFKA__SASL_USERNAME": "omnirouter",
            "OMNIROUTER_KAFKA__SASL_PASSWORD": SECRET,
            "OMNIROUTER_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
            "OMNIROUTER_REDIS__PASSWORD": SECRET,
        }
    )
    assert result.returncode != 0
    assert "did not answer" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_omnirouter_check_refuses_a_password_in_the_redis_url_without_echoing_it() -> None:
    result = _check({"OMNIROUTER_REDIS__URL": f"redis://:{SECRET}@127.0.0.1:6379/0"})
    assert result.returncode == 2
    assert "OMNIROUTER_REDIS" in result.stderr and "must not contain a password" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_settings_model_accepts_every_security_variable(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]
) -> None:
    """The names deploy/README.md documents are the names the Settings model reads."""
    env = {
        "OMNIROUTER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "OMNIROUTER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-256",
        "OMNIROUTER_KAFKA__SASL_USERNAME": "omnirouter",
        "OMNIROUTER_KAFKA__SASL_PASSWORD": SECRET,
        "OMNIROUTER_KAFKA__SSL_CAFILE": str(pki["ca"]),
        "OMNIROUTER_KAFKA__SSL_CERTFILE": str(pki["cert"]),
        "OMNIROUTER_KAFKA__SSL_KEYFILE": str(pki["key"]),
        "OMNIROUTER_KAFKA__SSL_CHECK_HOSTNAME": "false",
        "OMNIROUTER_KAFKA__REPLICATION_FACTOR": "3",
        "OMNIROUTER_KAFKA__MIN_INSYNC_REPLICAS": "2",
        "OMNIROUTER_REDIS__URL": "rediss://redis:6380/0",
        "OMNIROUTER_REDIS__USERNAME": "omnirouter",
        "OMNIROUTER_REDIS__PASSWORD": SECRET,
        "OMNIROUTER_REDIS__SSL_CA_CERTS": str(pki["ca"]),
        "OMNIROUTER_REDIS__SSL_CERTFILE": str(pki["cert"]),
        "OMNIROUTER_REDIS__SSL_KEYFILE": str(pki["key"]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings: Settings = load_settings()
    assert settings.kafka.sasl_mechanism == "SCRAM-SHA-256"
    assert settings.kafka.ssl_check_hostname is False
    assert settings.redis.ssl_keyfile == pki["key"]


# -- Replication of the topics omnirouter creates -------------------------------------------


def test_catalogue_topics_keep_the_catalogue_replication_by_default() -> None:
    topics = catalogue_topics(Settings())
    assert [t.replication_factor for t in topics] == [spec.replication_factor for spec in TOPICS]
    assert all("min.insync.replicas" not in t.configs for t in topics)


def test_cluster_replication_and_min_insync_apply_to_every_catalogue_topic() -> None:
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=2, topic_prefix="prod.")
    topics = catalogue_topics(Settings(kafka=kafka))
    assert len(topics) == len(TOPICS)
    for topic, spec in zip(topics, TOPICS, strict=True):
        assert topic.name == f"prod.{spec.key}"
        assert topic.partitions == spec.partitions
        assert topic.replication_factor == 3
        assert topic.configs["min.insync.replicas"] == "2"
        assert topic.configs["cleanup.policy"] == spec.cleanup_policy


def test_a_smaller_cluster_can_lower_the_replication() -> None:
    topics = catalogue_topics(Settings(kafka=KafkaSettings(replication_factor=2)))
    assert {t.replication_factor for t in topics} == {2}
