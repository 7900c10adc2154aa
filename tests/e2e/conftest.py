"""Fixtures for browser tests: the whole router running as processes, with fake providers."""

from integration.desktop.conftest import providers, router  # noqa: F401 - re-exported fixtures
