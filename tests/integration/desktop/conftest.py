"""The whole router running as processes, for desktop tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnirouter.devstack import StackAddresses
from support.fake_providers import FakeProviders, serve_fake_providers
from support.full_stack import RunningRouter, running_router

RULES = """
queues:
  - id: general
    offer_timeout_s: 120
  - id: billing
    skills: {billing: 1}
rules:
  - {id: money, when: {intents: [billing]}, route_to: billing}
default_queue: general
"""


@pytest.fixture
def providers() -> Iterator[FakeProviders]:
    with serve_fake_providers() as fake:
        yield fake


@pytest.fixture
def router(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    providers: FakeProviders,
    tmp_path: Path,
) -> Iterator[RunningRouter]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with running_router(
        stack,
        prefix=f"test.{unique_id}.",
        redis_prefix=redis_prefix,
        providers=providers,
        rules_file=rules,
        logs=tmp_path / "logs",
    ) as running:
        yield running
