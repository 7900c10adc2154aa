"""Errors shared by every channel."""

from __future__ import annotations


class NormalizationError(ValueError):
    """A provider payload that makes no interaction event; the message says why (HTTP 422)."""
