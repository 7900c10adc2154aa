"""Settings tests read the environment: a developer's own OMNIROUTER_* variables stay out."""

from __future__ import annotations

import os

import pytest


def clear_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every OMNIROUTER_* variable for this test (the test harness's OMNIROUTER_TEST_*
    stay)."""
    for key in list(os.environ):
        if key.startswith("OMNIROUTER_") and not key.startswith("OMNIROUTER_TEST_"):
            monkeypatch.delenv(key)
