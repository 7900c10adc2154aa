"""Errors that reach an operator: each carries one readable line, never a traceback."""

from __future__ import annotations


class OmnirouterError(Exception):
    """Base for failures the CLI reports as one line and a non-zero exit status."""

    exit_code: int = 1


class ConfigurationError(OmnirouterError):
    """A setting is missing, misspelt or invalid."""

    exit_code = 2


class MissingToolError(OmnirouterError):
    """A program the local stack needs (java, mvn, redis-server) is not installed."""

    exit_code = 3


class StackError(OmnirouterError):
    """The local Kafka or Redis could not be started, reached or stopped."""


class ServiceUnreachableError(OmnirouterError):
    """A configured Kafka broker or Redis server does not answer."""
