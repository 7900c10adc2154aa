"""What waking up costs on this host: a figure to compare machines by (measured, not assumed).

A worker or gateway at moderate load sleeps and wakes for nearly every fetch, reply and
request; under load the same work runs back to back. How much CPU a wake-up itself costs
differs between machines (on the project's 2-core VMs an event-loop wake-up a few dozen times
a second cost ~0.25 ms of CPU, three times what it cost at 1,000 a second), and with it the CPU
per event at low load. The bench measures it once, in its own process before its phases, and
reports it with the machine, so runs on different hosts can be told apart.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["WAKE_RATES", "wake_cost_us", "wake_costs"]

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
