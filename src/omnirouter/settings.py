"""Settings shared by every omnirouter process.

Read from ``OMNIROUTER_*`` environment variables (nested with ``__``, e.g.
``OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS``). Unknown keys are rejected: a misspelt setting is an
error at start-up, not a silently ignored value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnirouter.channels.tenant_addresses import TenantAddresses, address_claimed_twice
from omnirouter.errors import ConfigurationError
from omnirouter.events import Tenant
from omnirouter.pipeline.cases.intents import DEFAULT_INTENT_RULES, IntentRule
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.security import kafka_settings_problem, redis_settings_problem

ENV_PREFIX = "OMNIROUTER_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Where the Kafka cluster is and how topics are named."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="host:port[,host:port]; unset means the local devstack broker.",
    )
    topic_prefix: str = Field(default="omni.", pattern=r"^[A-Za-z0-9._-]*$")
    client_id: str = "omnirouter"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of every topic omnirouter creates; unset: the catalogue's (3), "
        "lowered to the number of brokers.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of the topics omnirouter creates; unset: the broker's.",
    )
    # Production clusters: SASL/SCRAM and TLS (see security.py for what each client gets).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: FilePath | None = Field(
        default=None, description="CA bundle (PEM) the brokers' certificates are checked against."
    )
    ssl_certfile: FilePath | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    ssl_keyfile: FilePath | None = Field(default=None, description="Key of ssl_certfile (PEM).")
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        problem = kafka_settings_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_are_host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server.strip()!r} is not host:port")
        return value

    def server_list(self) -> list[str]:
        """The bootstrap servers as a list (empty when devstack provides them)."""
        if self.bootstrap_servers is None:
            return []
        return [s.strip() for s in self.bootstrap_servers.split(",")]


class RedisSettings(_Section):
    """Where Redis is and how this deployment's keys are prefixed."""

    url: str | None = Field(
        default=None, description="redis://host:port/db; unset means the local devstack Redis."
    )
    # No "{" or "}": the prefix sits inside hash tags (see redis_keys).
    key_prefix: str = Field(default="omni", pattern=r"^[A-Za-z0-9_.:-]+$")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    cluster: bool = Field(
        default=False, description="Redis Cluster: url names any one node; clients follow slots."
    )
    username: str | None = Field(default=None, description="ACL user; unset: the default user.")
    password: SecretStr | None = None
    # TLS: a rediss:// URL, plus these when the server's CA is not a public one or the server
    # asks for a client certificate.
    ssl_ca_certs: FilePath | None = None
    ssl_certfile: FilePath | None = None
    ssl_keyfile: FilePath | None = None

    @field_validator("url")
    @classmethod
    def _url_has_redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _security_is_complete(self) -> RedisSettings:
        problem = redis_settings_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


def _default_state_dir() -> Path:
    return Path(".omnirouter") / "devstack"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "omnirouter"


class DevstackSettings(_Section):
    """The local Kafka + Redis that `make run` and the tests start."""

    state_dir: Path = Field(default_factory=_default_state_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    deploy_dir: Path | None = Field(
        default=None,
        description="Holds kafka/pom.xml and redis/redis.conf; default: the checkout's deploy/.",
    )
    kafka_heap: str = Field(default="768m", pattern=r"^\d+[mMgG]$")
    start_timeout_s: float = Field(default=90.0, gt=0)


class LogSettings(_Section):
    """Log level and format (JSON when not on a terminal, readable console otherwise)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"
    mask_personal_data: bool = Field(
        default=True,
        description="Mask phone numbers, e-mail addresses and message text in every log line.",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class PipelineSettings(_Section):
    """How stream workers take their input in batches: a batch goes to Redis and Kafka as soon
    as nothing more is waiting, up to ``batch_max`` events (see pipeline.stream.take_ready)."""

    batch_max: int = Field(default=500, ge=1, le=10_000)
    batch_within_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Longest wait for a batch to be handed over while events keep arriving.",
    )
    batch_linger_s: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Least age of a batch's first event before the batch is handed over: "
        "bigger batches (fewer Redis round trips) for that much more latency.",
    )
    retry_max_backoff_s: float = Field(
        default=5.0, gt=0, description="Longest pause between retries while Redis is down."
    )
    fetch_min_bytes: int = Field(
        default=16_384,
        ge=1,
        le=1_048_576,
        description="Least data a busy worker's fetch waits for (see fetch_busy_records_per_s).",
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        # No longer than a light worker's 100 ms (pipeline.app.FETCH_MAX_WAIT_MS): a longer
        # wait brings back the stalls that bound is there to prevent.
        le=100,
        description="Longest a busy worker's fetch waits for fetch_min_bytes.",
    )
    fetch_busy_records_per_s: float = Field(
        default=200,
        ge=0,
        description="Records a second a pipeline worker reads (all its input topics) from "
        "which its fetches wait for fetch_min_bytes; below half of it each fetch is answered at "
        "its first record, or after 100 ms at most. 0: always. Fuller fetches cost a busy "
        "worker less CPU per event (pipeline.fetching).",
    )

    @model_validator(mode="after")
    def _linger_within_the_window(self) -> PipelineSettings:
        if self.batch_linger_s > self.batch_within_s:
            raise ValueError(
                f"batch_linger_s ({self.batch_linger_s:g}) is longer than batch_within_s "
                f"({self.batch_within_s:g}), which bounds every wait for a batch"
            )
        return self


class CaseSettings(_Section):
    """Case lifecycle, timeline retention and the context that travels with a case."""

    reopen_window_s: int = Field(
        default=72 * 3600,
        ge=0,
        description="A message this soon after resolution reopens the case.",
    )
    timeline_max_entries: int = Field(default=500, ge=10, le=100_000)
    timeline_ttl_days: int = Field(default=180, ge=1)
    context_entries: int = Field(default=10, ge=1, le=200)
    story_max_fragments: int = Field(default=12, ge=1, le=100)
    repeat_contact_window_days: int = Field(default=7, ge=1, le=90)
    intent_rules: tuple[IntentRule, ...] = Field(default=DEFAULT_INTENT_RULES)


class RoutingSettings(_Section):
    """Where the routing rules are, and how often routing timers are checked."""

    rules_file: Path | None = Field(
        default=None, description="YAML rules file; unset: one always-open queue for everyone."
    )
    timer_interval_s: float = Field(default=0.5, gt=0, le=60)


class IngressSettings(_Section):
    """The ingress gateway: provider secrets, limits and the SMTP listener.

    A provider whose secret is unset has its endpoints closed (503): unsigned traffic is never
    accepted by default.
    """

    public_url: str | None = Field(
        default=None,
        description="Base URL providers call (e.g. https://cx.example.com); Twilio signs it. "
        "Unset: the URL of the request as received.",
    )
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=120)
    dedupe_ttl_s: int = Field(default=3 * 86400, ge=60, description="Provider retry window.")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503.")
    twilio_auth_token: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None
    mailgun_signing_key: SecretStr | None = None
    sendgrid_token: SecretStr | None = Field(
        default=None, description="Shared secret in the inbound-parse URL (?token=…)."
    )
    signing_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="Key id -> secret for the generic signed JSON endpoint."
    )
    signature_tolerance_s: int = Field(default=300, ge=10)
    webchat_allowed_origins: tuple[str, ...] = Field(
        default=(),
        description='Origins ("https://shop.example.com") whose pages may open the web chat '
        "socket; empty: any page may embed the widget.",
    )
    form_allowed_origins: tuple[str, ...] = Field(
        default=(),
        description="Hosts (or origins) whose pages may post web forms, checked against "
        "Origin/Referer; empty: any.",
    )
    smtp_enabled: bool = True
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=0, le=65535)


class OutboundSettings(_Section):
    """Where replies go out: provider API base URLs (settings, so tests use local fakes)."""

    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    meta_api_base: str = "https://graph.facebook.com/v20.0"
    meta_phone_number_id: str | None = None
    meta_access_token: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    email_from: str = "support@omnirouter.invalid"
    email_default_subject: str = Field(
        default="Your message", description="Subject of an e-mail reply that has none."
    )
    whatsapp_provider: Literal["twilio", "meta"] = Field(
        default="twilio",
        description="Who sends WhatsApp replies unless the event names twilio or meta itself.",
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Per provider call (HTTP request, SMTP command)."
    )
    concurrency: int = Field(
        default=8, ge=1, le=256, description="Deliveries in flight at once within a batch."
    )
    claim_ttl_s: int = Field(
        default=3 * 86400,
        ge=60,
        description="How long a delivered event id is remembered, so a redelivery is not resent.",
    )


class DesktopSettings(_Section):
    """The agent desktop: sessions and live updates."""

    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    live_updates: bool = True


class OpsSettings(_Section):
    """Metrics, the lag monitor, the /ops dashboard, and how long a stop may take."""

    worker_metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Port of `omnirouter worker`'s /metrics (0: pick a free one, -1 would be off).",
    )
    lag_sample_interval_s: float = Field(default=5.0, gt=0, le=300)
    lag_window: int = Field(
        default=10, ge=3, le=100, description="Offset samples per partition Burrow evaluates."
    )
    lag_groups: tuple[str, ...] = Field(
        default=(), description="Consumer groups to watch; empty: every group on the cluster."
    )
    stop_deadline_s: float = Field(
        default=90.0,
        gt=0,
        le=3600,
        description="After SIGTERM/SIGINT, how long `worker` and `serve` may finish in-flight "
        "work before they exit anyway (a hung broker or Redis must not keep them running).",
    )


class ApiSettings(_Section):
    """The HTTP API (identity administration now; gateway and desktop routes join it later)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for operator endpoints; unset disables them (503).",
    )
    tenant_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Tenant -> bearer token opening the operator endpoints for that tenant "
        "only (admin_token is the platform operator's, for every tenant).",
    )


class DemoSettings(_Section):
    """The demo `omnirouter run` adds: simulated customers, a local provider, demo agents."""

    enabled: bool = Field(
        default=True,
        description="Only `omnirouter run` reads this; `worker` and `serve` never simulate.",
    )
    interval_s: float = Field(
        default=4.0, ge=0.05, le=3600, description="Seconds between two simulated messages."
    )
    agents: tuple[str, ...] = Field(
        default=("alex", "sam"), min_length=1, description="Demo agents serving every queue."
    )


class Settings(BaseSettings):
    """All of omnirouter's settings; each component reads its own section."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    devstack: DevstackSettings = Field(default_factory=DevstackSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    identity: IdentityPolicy = Field(default_factory=IdentityPolicy)
    api: ApiSettings = Field(default_factory=ApiSettings)
    cases: CaseSettings = Field(default_factory=CaseSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    tenants: dict[Tenant, TenantAddresses] = Field(
        default_factory=dict,
        description="Tenant -> its business addresses: provider traffic to them is that "
        "tenant's, its replies leave from them; unconfigured: everything is the default tenant.",
    )

    @field_validator("tenants")
    @classmethod
    def _each_address_has_one_tenant(
        cls, tenants: dict[str, TenantAddresses]
    ) -> dict[str, TenantAddresses]:
        problem = address_claimed_twice(tenants)
        if problem is not None:
            raise ValueError(problem)
        return tenants


def _unknown_environment_keys(environ: Mapping[str, str]) -> list[str]:
    # pydantic-settings rejects unknown nested keys but silently ignores an unknown top-level
    # OMNIROUTER_* variable, so a misspelt section name would go unnoticed without this check.
    sections = {name.upper() for name in Settings.model_fields}
    unknown = []
    for key in environ:
        if not key.upper().startswith(ENV_PREFIX):
            continue
        section = key[len(ENV_PREFIX) :].upper().split("__", 1)[0]
        if section not in sections and not key.upper().startswith(f"{ENV_PREFIX}TEST_"):
            unknown.append(key)
    return sorted(unknown)


def load_settings() -> Settings:
    """Read settings from the environment, turning every mistake into one readable line.

    Raises:
        ConfigurationError: a variable is unknown or its value is invalid.
    """
    unknown = _unknown_environment_keys(os.environ)
    if unknown:
        known = ", ".join(f"{ENV_PREFIX}{name.upper()}__*" for name in Settings.model_fields)
        raise ConfigurationError(f"unknown setting {unknown[0]} (known: {known})")
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the environment variable at fault and what is wrong with it."""
    first = exc.errors()[0]
    variable = ENV_PREFIX + "__".join(str(part).upper() for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {variable}: {message}{more}"
