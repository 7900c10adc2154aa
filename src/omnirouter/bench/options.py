"""What one bench run does: phases, durations and where the search for each rate starts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnirouter.settings import PipelineSettings

__all__ = ["PHASES", "BenchOptions"]

PHASES = ("pipeline", "faust", "baseline", "gateway")


@dataclass(frozen=True)
class BenchOptions:
    """Durations scale with ``scale``; ``quick`` is the ~4-minute smoke run (warm-up included)."""

    quick: bool = False
    scale: float = 1.0
    results_dir: Path = Path("results")
    phases: tuple[str, ...] = PHASES
    pipeline_start: float = 2_000.0
    baseline_start: float = 5_000.0
    gateway_start: float = 500.0
    pipeline_rates: tuple[float, ...] = ()
    """Offered rates (events/s) the pipeline is measured at instead of its search: what a
    worker costs at the loads a deployment sees (empty: search for the maximum)."""
    profile: bool = False
    """py-spy on the worker and the gateway through their phases (bench.profiling)."""
    customers: int = 0
    """0: the default for the mode (500 quick, 3,000 full): each is primed on 4 channels."""
    batch_max: int = field(default_factory=lambda: PipelineSettings().batch_max)
    command: str = "python -m omnirouter.bench"

    def __post_init__(self) -> None:
        """Reject what cannot make a meaningful run."""
        if self.scale <= 0:
            raise ValueError("--scale must be positive")
        unknown = set(self.phases) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown phase {sorted(unknown)[0]!r} (known: {', '.join(PHASES)})")
        if any(not (math.isfinite(rate) and rate > 0) for rate in self.pipeline_rates):
            raise ValueError("--pipeline-rates must all be positive, finite events/s")
        if self.customers == 0:
            object.__setattr__(self, "customers", 500 if self.quick else 3_000)

    @property
    def warmup_s(self) -> float:
        """Unmeasured seconds at the start of each step."""
        return (1.5 if self.quick else 5.0) * self.scale

    @property
    def steady_s(self) -> float:
        """Measured seconds of each search step."""
        return (3.0 if self.quick else 10.0) * self.scale

    @property
    def final_steady_s(self) -> float:
        """Measured seconds of the 50% and 90% runs (more samples for p99.9)."""
        return (4.0 if self.quick else 20.0) * self.scale

    @property
    def growth(self) -> float:
        """Factor between search steps until one fails."""
        return 2.0 if self.quick else 1.5

    @property
    def refinements(self) -> int:
        """Bisection steps after the first failure."""
        return 1 if self.quick else 3

    @property
    def capacity_events(self) -> int:
        """Events the generator sends flat out to measure its own speed."""
        return 50_000 if self.quick else 200_000

    @property
    def catch_up_events(self) -> int:
        """The backlog each Kafka phase works off after its search (see KafkaPhase.catch_up)."""
        return round((8_000 if self.quick else 30_000) * self.scale)

    @property
    def catch_up_rate(self) -> float:
        """How fast that backlog is offered: far above a worker's maximum, so it is a backlog
        (capped at the search's ceiling, 0.8 of the load generator's capacity). The raw
        baseline keeps up with it, and its catch-up shows this rate."""
        return 20_000.0

    @property
    def prime_rate(self) -> float:
        """Rate of the first contacts that make the population known before measuring."""
        return 1_000.0

    def as_dict(self) -> dict[str, Any]:
        """For the JSON result."""
        data = asdict(self)
        data["results_dir"] = str(self.results_dir)
        data.update(
            warmup_s=self.warmup_s,
            steady_s=self.steady_s,
            final_steady_s=self.final_steady_s,
            growth=self.growth,
            refinements=self.refinements,
            catch_up_events=self.catch_up_events,
            catch_up_rate=self.catch_up_rate,
        )
        return data
