"""What waking up, and the same Python after a sleep, cost on this host: figures to compare
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
On the project's VMs it cost 30-60 µs back to back, up to 1.7 times that after other code, and
260-340 µs after the sleep: five to ten times slower, as code and data out of the CPU's caches
would make it (the figure cannot tell that from a slower clock or the VM's scheduling). A
process woken for every few events pays some of that on its work, which the wake-up figure
alone leaves out.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "LOCALITY_MODES",
    "WAKE_RATES",
    "locality_costs",
    "routine_cost_us",
    "slice_starts",
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
_OTHER_ITEMS = 4_000
_OTHER_SLICE = 40
_HEX = re.compile(r"[0-9a-f]")


def slice_starts(items: int, size: int) -> Iterator[int]:
    """Where each run of the other code starts reading ``size`` of ``items``: the next slice
    each time, round all of them, so that each run reads data not touched lately."""
    return itertools.cycle(range(0, items, size))


_other_starts = slice_starts(_OTHER_ITEMS, _OTHER_SLICE)


@functools.cache
def _other_data() -> list[tuple[Decimal, str, str]]:
    # Built on first use, not on import (~1.6 MB): most importers only want the wake-ups.
    return [
        (
            Decimal(i) / 7,
            f"{i:08x}-{i * 7919:08x}-{i * 104729:012x}",
            f'{{"at": "2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00", "n": {i}}}',
        )
        for i in range(_OTHER_ITEMS)
    ]


def _routine() -> None:
    """A webhook's pure-Python part, in small: parse its form, sign it, encode an event."""
    fields = dict(parse_qsl(_FORM))
    signed = "https://example.test/webhooks" + "".join(k + v for k, v in sorted(fields.items()))
    hmac.new(b"k" * 32, signed.encode(), hashlib.sha1).digest()
    json.dumps({"fields": fields, "positions": list(range(40))})


def _other_code() -> None:
    """Other libraries' code (regular expressions, decimals, JSON, dates) over the next slice
    of its data: what runs between two steps of one request in a busy process."""
    start = next(_other_starts)
    total = Decimal(0)
    for number, text, document in _other_data()[start : start + _OTHER_SLICE]:
        parsed = json.loads(document)
        day = datetime.fromisoformat(parsed["at"])
        total += number * len(_HEX.sub("x", text)) + day.toordinal() + parsed["n"]


def _sleep() -> None:
    time.sleep(_SLEEP_S)


# What runs before each timed run, by mode; looked up when called, so each can be replaced.
_BEFORE: dict[str, Callable[[], None] | None] = {
    "back to back": None,
    "after other code": lambda: _other_code(),
    f"after a {1000 * _SLEEP_S:g} ms sleep": lambda: _sleep(),
}
LOCALITY_MODES = tuple(_BEFORE)
"""What runs between two timed runs of the routine: nothing, other code, or a sleep."""
_REPEATS_A_SECOND = dict(zip(LOCALITY_MODES, (2_000, 400, 1 / _SLEEP_S), strict=True))
"""Runs per second of :func:`locality_costs`' budget: the sleeps fill it, the other modes'
runs add ~0.2 s of CPU to each second of it on the project's VMs."""


def routine_cost_us(mode: str, repeats: int) -> float:
    """Median CPU microseconds (this thread's) of one run of a small, fixed Python routine
    when ``mode`` (one of :data:`LOCALITY_MODES`) runs before each of ``repeats`` runs.

    Only the routine is timed, so neither a sleep's wake-up nor the other code is in the
    figure: what it shows is the routine's own cost after each. Blocks (``repeats`` sleeps of
    20 ms in the sleep mode): call it from a thread of its own in asyncio code.

    Raises:
        ValueError: ``mode`` is unknown or ``repeats`` is not positive.
    """
    if mode not in _BEFORE:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(LOCALITY_MODES)}")
    if repeats <= 0:
        raise ValueError("repeats must be positive")
    before = _BEFORE[mode]
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
    """:func:`routine_cost_us` in each of :data:`LOCALITY_MODES`, keyed by mode. Blocks for
    about ``seconds`` of sleeps, plus the CPU of the other modes' runs (~0.2 s a second of
    budget on the project's VMs)."""
    return {
        mode: round(routine_cost_us(mode, max(1, round(per_s * seconds))), 1)
        for mode, per_s in _REPEATS_A_SECOND.items()
    }
