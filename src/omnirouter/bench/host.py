"""What waking up, and running code out of cache, cost on this host: figures to compare
machines by (measured, not assumed).

A worker or gateway at moderate load sleeps and wakes for nearly every fetch, reply and
request; under load the same work runs back to back. How much CPU a wake-up itself costs
differs between machines (on the project's 2-core VMs an event-loop wake-up a few dozen times
a second cost ~0.25 ms of CPU, three times what it cost at 1,000 a second), and with it the CPU
per event at low load. The bench measures it once, in its own process before its phases, and
reports it with the machine, so runs on different hosts can be told apart.

The second figure tells the wake-up from the work after it: the median CPU of a small, fixed
piece of Python (a webhook's form parsed and signed, an event encoded) run back to back, after
other libraries' code, and after a 20 ms sleep, with the sleep's wake-up outside the timed part.
On the project's VMs it cost ~30 µs back to back, ~40 µs after other code and ~260-340 µs
after the sleep: work that follows a sleep runs with its code and data out of the CPU's
caches, eight to ten times slower. A process woken for every few events pays that on all of its
work, which the wake-up figure alone understates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "LOCALITY_MODES",
    "WAKE_RATES",
    "locality_costs",
    "routine_cost_us",
    "wake_cost_us",
    "wake_costs",
]

WAKE_RATES = (50.0, 1000.0)
"""Wake-ups a second the cost is measured at: a lightly loaded process, and a busy one."""

_UNTIMED_WAKES = 5
"""Wake-ups before each measurement: the first ones also pay for code not yet run."""


async def wake_cost_us(rate: float, wakes: int) -> float:
    """CPU microseconds this process spends per event-loop wake-up, sleeping ``1 / rate``
    seconds before each of ``wakes`` wake-ups (the loop doing nothing else meanwhile).

    Every wake-up counted follows a real sleep: a schedule kept open loop would, on a busy
    host, turn late ones into mere yields that never sleep, and lower the figure just when the
    host is loaded.

    Raises:
        ValueError: ``rate`` or ``wakes`` is not positive.
    """
    if rate <= 0 or wakes <= 0:
        raise ValueError("rate and wakes must be positive")
    pause = 1.0 / rate
    for _ in range(_UNTIMED_WAKES):
        await asyncio.sleep(pause)
    cpu = time.process_time()
    for _ in range(wakes):
        await asyncio.sleep(pause)
    return 1e6 * (time.process_time() - cpu) / wakes


async def wake_costs(seconds_each: float = 1.0) -> dict[str, float]:
    """:func:`wake_cost_us` at each of :data:`WAKE_RATES` for about ``seconds_each``, keyed
    like ``"50/s"``."""
    return {
        f"{rate:g}/s": round(await wake_cost_us(rate, max(1, round(rate * seconds_each))), 1)
        for rate in WAKE_RATES
    }


LOCALITY_MODES = ("back to back", "after other code", "after a 20 ms sleep")
"""What runs between two timed runs of the routine: nothing, other code, or a sleep."""

_SLEEP_S = 0.02
_UNTIMED_RUNS = 5
"""Runs of the routine before timing it: the first ones also pay for code not yet run."""
_FORM = urlencode(
    {
        "MessageSid": "SM" + "5" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15551234567",
        "To": "+15017122661",
        "Body": "Hi, my parcel never arrived, can you check order 1182? " * 2,
        "NumMedia": "0",
    }
)
_OTHER_DATA = [
    (
        Decimal(i) / 7,
        f"{i:08x}-{i * 7919:08x}-{i * 104729:012x}",
        f'{{"at": "2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00", "n": {i}}}',
    )
    for i in range(4_000)
]
_OTHER_SLICE = 40
_OTHER_STARTS = itertools.cycle(range(0, len(_OTHER_DATA), _OTHER_SLICE))
_HEX = re.compile(r"[0-9a-f]")


def _routine() -> None:
    """A webhook's pure-Python part, in small: parse its form, sign it, encode an event."""
    fields = dict(parse_qsl(_FORM))
    signed = "https://example.test/webhooks" + "".join(k + v for k, v in sorted(fields.items()))
    hmac.new(b"k" * 32, signed.encode(), hashlib.sha1).digest()
    json.dumps({"fields": fields, "positions": list(range(40))})


def _other_code() -> None:
    """Other libraries' code (regular expressions, decimals, JSON, dates) over data not touched
    lately, the next slice in turn: what runs between two steps of one request in a busy
    process."""
    start = next(_OTHER_STARTS)
    total = Decimal(0)
    for number, text, document in _OTHER_DATA[start : start + _OTHER_SLICE]:
        parsed = json.loads(document)
        day = datetime.fromisoformat(parsed["at"])
        total += number * len(_HEX.sub("x", text)) + day.toordinal() + parsed["n"]


def routine_cost_us(mode: str, repeats: int) -> float:
    """Median CPU microseconds (this thread's) of one run of a small, fixed Python routine
    when ``mode`` (one of :data:`LOCALITY_MODES`) runs before each of ``repeats`` runs.

    Only the routine is timed, so a sleep's wake-up is not in the figure; what grows is the
    routine's own cost, its code and data having left the caches meanwhile. Blocks for up to
    ``repeats`` times 20 ms: call it from a thread of its own in asyncio code.

    Raises:
        ValueError: ``mode`` is unknown or ``repeats`` is not positive.
    """
    if mode not in LOCALITY_MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(LOCALITY_MODES)}")
    if repeats <= 0:
        raise ValueError("repeats must be positive")
    before: Callable[[], None] | None = {
        LOCALITY_MODES[1]: _other_code,
        LOCALITY_MODES[2]: lambda: time.sleep(_SLEEP_S),
    }.get(mode)
    for _ in range(_UNTIMED_RUNS):
        _routine()
    costs = []
    for _ in range(repeats):
        if before is not None:
            before()
        cpu = time.thread_time()
        _routine()
        costs.append(time.thread_time() - cpu)
    return 1e6 * statistics.median(costs)


def locality_costs(seconds: float = 1.0) -> dict[str, float]:
    """:func:`routine_cost_us` in each of :data:`LOCALITY_MODES`, keyed by mode, in about
    ``seconds`` and a fifth (blocking; the sleeps take ``seconds``)."""
    repeats = {
        LOCALITY_MODES[0]: 2_000 * seconds,
        LOCALITY_MODES[1]: 400 * seconds,
        LOCALITY_MODES[2]: seconds / _SLEEP_S,
    }
    return {
        mode: round(routine_cost_us(mode, max(1, round(count))), 1)
        for mode, count in repeats.items()
    }
