"""Settings: read from OMNIROUTER_* variables, unknown keys rejected at start-up."""

from __future__ import annotations

import pytest

from omnirouter.errors import ConfigurationError
from omnirouter.settings import load_settings
from support.settings_env import clear_ambient_settings


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient_settings(monkeypatch)


def test_defaults_leave_services_to_devstack() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers is None
    assert settings.redis.url is None
    assert settings.kafka.topic_prefix == "omni."


def test_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9092, 10.0.0.2:9092")
    monkeypatch.setenv("OMNIROUTER_LOG__LEVEL", "debug")
    settings = load_settings()
    assert settings.kafka.server_list() == ["10.0.0.1:9092", "10.0.0.2:9092"]
    assert settings.log.level == "DEBUG"


def test_unknown_nested_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_REDIS__ULR", "redis://x:1")
    with pytest.raises(ConfigurationError, match="OMNIROUTER_REDIS__ULR: unknown setting"):
        load_settings()


def test_unknown_section_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_REDDIS__URL", "redis://x:1")
    with pytest.raises(ConfigurationError, match="unknown setting OMNIROUTER_REDDIS__URL"):
        load_settings()


def test_redis_url_needs_a_redis_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_REDIS__URL", "http://x:1")
    with pytest.raises(ConfigurationError, match="OMNIROUTER_REDIS__URL"):
        load_settings()


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.kafka.topic_prefix = "x."  # type: ignore[misc]


def test_a_batch_linger_longer_than_the_batch_window_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The window bounds every wait for a batch, so a longer linger would silently not apply.
    monkeypatch.setenv("OMNIROUTER_PIPELINE__BATCH_WITHIN_S", "0.05")
    monkeypatch.setenv("OMNIROUTER_PIPELINE__BATCH_LINGER_S", "0.2")
    with pytest.raises(ConfigurationError, match="batch_linger_s"):
        load_settings()
    monkeypatch.setenv("OMNIROUTER_PIPELINE__BATCH_LINGER_S", "0.02")
    assert load_settings().pipeline.batch_linger_s == 0.02
