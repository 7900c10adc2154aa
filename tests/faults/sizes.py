"""How big each fault scenario runs: ``short`` inside ``make test``, ``full`` under
``make test-faults`` (``OMNIROUTER_TEST_FAULTS=full``)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest

SCALE_VARIABLE = "OMNIROUTER_TEST_FAULTS"
SEED_VARIABLE = "OMNIROUTER_TEST_FAULTS_SEED"


@dataclass(frozen=True)
class Size:
    """One scenario at one scale."""

    name: str
    events: int
    customers: int
    faults: int
    timeout_s: int

    def param(self) -> object:
        """This size as a pytest parameter, with a per-test timeout that fits it."""
        return pytest.param(self, id=self.name, marks=pytest.mark.timeout(self.timeout_s))


def scale() -> str:
    """The scale this run asks for (``short`` unless the environment says ``full``)."""
    value = os.environ.get(SCALE_VARIABLE, "short")
    if value not in ("short", "full"):
        raise ValueError(f"{SCALE_VARIABLE} must be 'short' or 'full', not {value!r}")
    return value


def sizes(short: Size, full: Size) -> list[object]:
    """The one size of a scenario this run executes, as ``parametrize`` values."""
    return [(full if scale() == "full" else short).param()]


def seed() -> int:
    """The run's random seed: given in the environment to replay a run, else a fresh one."""
    given = os.environ.get(SEED_VARIABLE)
    return int(given) if given else random.SystemRandom().randrange(1, 2**31)
