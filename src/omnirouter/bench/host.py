"""What waking up costs on this host: a figure to compare machines by (measured, not assumed).

A worker or gateway at moderate load sleeps and wakes for nearly every fetch, reply and
request; under load the same work runs back to back. How much CPU a wake-up itself costs
differs a great deal between machines (on the project's 2-core VMs an event-loop wake-up a
few times a second cost ~0.25 ms of CPU, against tens of microseconds on bare metal), and
with it the CPU per event at low load. The bench measures it once, before its stack starts,
and reports it with the machine, so runs on different hosts can be told apart.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["WAKE_RATES", "wake_cost_us", "wake_costs"]

WAKE_RATES = (50.0, 1000.0)
"""Wake-ups a second the cost is measured at: a lightly loaded process, and a busy one."""


async def wake_cost_us(rate: float, wakes: int) -> float:
    """CPU microseconds this process spends per event-loop wake-up, woken by a timer ``rate``
    times a second, ``wakes`` times in a row (the loop doing nothing else meanwhile).

    Raises:
        ValueError: ``rate`` or ``wakes`` is not positive.
    """
    if rate <= 0 or wakes <= 0:
        raise ValueError("rate and wakes must be positive")
    loop = asyncio.get_running_loop()
    start = loop.time()
    cpu = time.process_time()
    for index in range(1, wakes + 1):
        # Open loop: each wake-up is due at its own time, so a late one does not shift the rest.
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
    return 1e6 * (time.process_time() - cpu) / wakes


async def wake_costs(seconds_each: float = 1.0) -> dict[str, float]:
    """:func:`wake_cost_us` at each of :data:`WAKE_RATES`, keyed like ``"50/s"``."""
    return {
        f"{rate:g}/s": round(await wake_cost_us(rate, max(1, round(rate * seconds_each))), 1)
        for rate in WAKE_RATES
    }
