"""`make bench`: the whole run — stack, load generator, pipeline, faust floor, baseline, gateway,
report.

First the broker is warmed up (bench.warmup). Each Kafka phase (the pipeline worker, then the
raw baseline) searches for its maximum sustainable rate with fixed-rate steps (warm-up, then a
steady window whose backlog must stay bounded), then runs at 50% and 90% of it for the latency
percentiles, then works off a backlog (the catch-up). Between them, the faust floor (the
worker's framework path with no stage code, bench.baseline) runs a catch-up only. The gateway
phase does the same with signed webhooks against one `omnirouter serve`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnirouter.bench.baseline import BASELINE_HOPS, FAUST_HOPS, Framework, PassThrough
from omnirouter.bench.host import locality_costs, wake_costs
from omnirouter.bench.loadgen import GeneratorHandle
from omnirouter.bench.measure import OutputMeter
from omnirouter.bench.options import BenchOptions
from omnirouter.bench.phases import KafkaPhase, at_fixed_rates, gateway_phase
from omnirouter.bench.processes import ProcessSampler, RouterProcess
from omnirouter.bench.profiling import Profile
from omnirouter.bench.report import target_checks
from omnirouter.bench.schedule import StepPlan
from omnirouter.bench.warmup import (
    WARM_UP_HOPS,
    WARM_UP_MAX_WINDOWS,
    WARM_UP_RATE,
    WARM_UP_WINDOW_S,
    warm_up,
)
from omnirouter.connections import TopicRequest, ensure_topics, wait_for_kafka, wait_for_redis
from omnirouter.devstack import DevStack
from omnirouter.devstack.network import free_port
from omnirouter.events.topics import topic_spec
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import DevstackSettings, KafkaSettings, Settings, load_settings

__all__ = ["run_bench"]

_PARTITIONS = topic_spec("interactions.inbound").partitions


@dataclass
class _Run:
    options: BenchOptions
    progress: Callable[[str], None]
    nonce: int = field(default_factory=lambda: secrets.randbits(32))
    kafka: str = ""
    redis_url: str = ""
    stack_pids: dict[str, int] = field(default_factory=dict)
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def topic_prefix(self) -> str:
        return f"bench{self.nonce:08x}."

    @property
    def key_prefix(self) -> str:
        return f"bench{self.nonce:08x}"

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS=self.kafka,
            OMNIROUTER_REDIS__URL=self.redis_url,
            OMNIROUTER_KAFKA__TOPIC_PREFIX=self.topic_prefix,
            OMNIROUTER_REDIS__KEY_PREFIX=self.key_prefix,
            OMNIROUTER_OPS__WORKER_METRICS_PORT=str(free_port()),
            OMNIROUTER_LOG__FORMAT="json",
        )
        # Logging on the hot path is part of what is measured only when asked for.
        env.setdefault("OMNIROUTER_LOG__LEVEL", "WARNING")
        env.update(extra)
        return env


async def run_bench(options: BenchOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run every phase the options ask for and return the result (not yet written)."""
    run = _Run(options, progress)
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": options.command,
        "machine": _machine(),
        "options": options.as_dict(),
    }
    try:
        # First, so that nothing the bench starts (a devstack, children) competes with it.
        progress("measuring what an event-loop wake-up costs this host")
        wakes = result["machine"]["wake_cpu_us"] = await wake_costs()
        progress(
            "an event-loop wake-up costs "
            + ", ".join(f"{us:,.0f} µs of CPU at {rate}" for rate, us in wakes.items())
        )
        progress("measuring what the same Python costs back to back, after other code, asleep")
        routine = result["machine"]["routine_cpu_us"] = await asyncio.to_thread(locality_costs)
        progress(
            "a small fixed Python routine costs "
            + ", ".join(f"{us:,.0f} µs of CPU {mode}" for mode, us in routine.items())
        )
        await _connect(run, result)
        generator = GeneratorHandle(
            run.kafka, customers=options.customers, partitions=_PARTITIONS, nonce=run.nonce
        )
        progress(f"building {options.customers:,} customers' traffic in the load generator")
        info = await generator.start()
        run.cleanups.append(generator.stop)
        result["generator"] = {**info, **await _generator_capacity(run, generator)}
        ceiling = 0.8 * result["generator"]["capacity"]
        # Before any phase: a fresh broker's first minute costs it several times the CPU (see
        # bench.warmup), which the first phase would pay on the same cores.
        result["warm_up"] = await _warm_broker(run, generator, ceiling)
        if "pipeline" in options.phases:
            result["pipeline"] = await _pipeline(run, generator, ceiling)
        if "faust" in options.phases:
            result["faust"] = await _faust_floor(run, generator, ceiling)
        if "baseline" in options.phases:
            result["baseline"] = await _baseline(run, generator, ceiling)
        if "gateway" in options.phases:
            result["gateway"] = await _gateway(run)
    finally:
        for cleanup in reversed(run.cleanups):
            await asyncio.to_thread(cleanup)
    if run.profiles:
        result["profiles"] = run.profiles
    pipeline_max = (result.get("pipeline") or {}).get("max_sustainable")
    baseline_max = (result.get("baseline") or {}).get("max_sustainable")
    if pipeline_max and baseline_max:
        result["ratio"] = round(pipeline_max / baseline_max, 3)
    result["targets"] = target_checks(result)
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "commit": commit or None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


async def _connect(run: _Run, result: dict[str, Any]) -> None:
    settings = load_settings()
    kafka, redis_url = settings.kafka.bootstrap_servers, settings.redis.url
    if kafka is None or redis_url is None:
        state = Path(tempfile.mkdtemp(prefix="omnirouter-bench-stack-"))
        run.progress(f"starting devstack (Kafka broker and redis-server) in {state}")
        stack = DevStack(
            DevstackSettings(
                state_dir=state,
                cache_dir=settings.devstack.cache_dir,
                deploy_dir=settings.devstack.deploy_dir,
                kafka_heap=settings.devstack.kafka_heap,
            ),
            tie_to_parent=True,  # a Ctrl-C or a crash of the bench leaves no JVM behind
        )
        addresses = await asyncio.to_thread(stack.up)

        def stop_stack() -> None:
            stack.down()
            shutil.rmtree(state, ignore_errors=True)

        run.cleanups.append(stop_stack)
        kafka = kafka or addresses.kafka_bootstrap_servers
        redis_url = redis_url or addresses.redis_url
        kafka_pid, redis_pid = (await asyncio.to_thread(stack.status)).pids
        run.stack_pids = {"kafka": kafka_pid, "redis": redis_pid}
        result["stack"] = {"source": "devstack"}
    else:
        result["stack"] = {"source": "environment"}
    await asyncio.to_thread(wait_for_kafka, kafka, timeout_s=30)
    await asyncio.to_thread(wait_for_redis, redis_url, timeout_s=10)
    run.kafka, run.redis_url = kafka, redis_url
    result["stack"].update(kafka=kafka, redis=redis_url, topic_prefix=run.topic_prefix)
    topics = catalogue_topics(
        Settings(kafka=KafkaSettings(bootstrap_servers=kafka, topic_prefix=run.topic_prefix))
    )
    topics += [
        TopicRequest(f"{run.topic_prefix}{key}", _PARTITIONS, {"retention.ms": "3600000"})
        for key in (*BASELINE_HOPS, *FAUST_HOPS, *WARM_UP_HOPS, "bench.scratch")
    ]
    created = await asyncio.to_thread(ensure_topics, kafka, topics)
    run.progress(
        f"kafka {kafka}, redis {redis_url}: {len(created)} topics under {run.topic_prefix}"
    )


async def _generator_capacity(run: _Run, generator: GeneratorHandle) -> dict[str, Any]:
    events = run.options.capacity_events
    rate = 1e7  # everything due at once: the generator's own speed is what is left
    plan = StepPlan(0, rate, time.monotonic() + 0.2, 0.0, events / rate)
    report = await generator.run(plan, topic=f"{run.topic_prefix}bench.scratch")
    capacity = round(report.acked / max(1e-9, report.elapsed_s))
    run.progress(
        f"load generator alone: {capacity:,} events/s acknowledged ({report.acked:,} events, "
        f"acks=all, {generator.info['mean_event_bytes']:.0f} bytes each)"
    )
    return {"capacity": capacity, "capacity_events": report.acked, "errors": report.errors}


def _samplers(run: _Run, **pids: int) -> dict[str, ProcessSampler]:
    all_pids = {**pids, "bench": os.getpid(), **run.stack_pids}
    return {name: ProcessSampler(pid) for name, pid in all_pids.items()}


async def _with_process(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[bool], None],
    body: Callable[[], Awaitable[Any]],
) -> Any:
    """``body`` between ``start`` and ``stop``; ``stop(True)`` when ``body`` failed, so what
    would explain it (a child's log) is kept."""
    await start()
    failed = True
    try:
        result = await body()
        failed = False
        return result
    finally:
        await asyncio.to_thread(stop, failed)


def _started(run: _Run, process: RouterProcess) -> Callable[[], Awaitable[None]]:
    """Starts ``process`` for :func:`_with_process`, and with ``--profile`` py-spy on it."""

    async def start() -> None:
        await asyncio.to_thread(process.start)
        if run.options.profile:
            # Taken back by the stopper whatever happens next, like the process itself.
            profile = process.profile = Profile(process.command, process.pid)
            profile.start()
            run.progress(
                f"profiling `omnirouter {process.command}` with py-spy"
                + (f": {profile.error}" if profile.error else "")
            )

    return start


def _stopper(run: _Run, whose: str, process: RouterProcess) -> Callable[[bool], None]:
    """Stops ``process`` for :func:`_with_process`, keeping its log (and saying where) when the
    phase failed; its profile, if it had one, goes into the result."""

    def stop(failed: bool) -> None:
        profile, process.profile = process.profile, None
        try:
            process.stop(keep_log=failed)
            if failed:
                run.progress(f"{whose}'s log is kept in {process.log_path}")
        finally:
            if profile is not None:  # py-spy ends with its process, stopped or not
                summary = run.profiles[process.command] = profile.finish()
                run.progress(
                    f"profile of `omnirouter {process.command}`: "
                    + (summary.get("error") or f"{summary['samples']:,} samples")
                )

    return stop


async def _pipeline(run: _Run, generator: GeneratorHandle, ceiling: float) -> dict[str, Any]:
    options = run.options
    worker = RouterProcess("worker", run.child_env())
    run.progress("pipeline: starting one `omnirouter worker` (identity, cases, routing)")

    async def body() -> dict[str, Any]:
        port = worker.env["OMNIROUTER_OPS__WORKER_METRICS_PORT"]
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        meter = OutputMeter(
            run.kafka,
            topic_spec("cases.events").name(run.topic_prefix),
            partitions=topic_spec("cases.events").partitions,
            id_field="cause_event_id",
            nonce=run.nonce,
        )
        await meter.start()
        try:
            phase = KafkaPhase(
                "pipeline",
                options,
                generator,
                meter,
                input_topic=topic_spec("interactions.inbound").name(run.topic_prefix),
                samplers=_samplers(run, worker=worker.pid, generator=generator.pid),
                progress=run.progress,
                metrics_url=metrics_url,
                redis_url=run.redis_url,
                case_key_prefix=run.key_prefix,
            )
            await phase.prime()
            if options.pipeline_rates:
                return await at_fixed_rates(options.pipeline_rates, options.steady_s, phase.step)
            return await _search_then_catch_up(phase, options, options.pipeline_start, ceiling)
        finally:
            await meter.stop()

    stop = _stopper(run, "pipeline: the worker", worker)
    return dict(await _with_process(_started(run, worker), stop, body))


async def _on_pass_through(
    run: _Run,
    generator: GeneratorHandle,
    name: str,
    hops: Sequence[str],
    use: Callable[[KafkaPhase], Awaitable[dict[str, Any]]],
    *,
    framework: Framework = "aiokafka",
) -> dict[str, Any]:
    """``use`` a phase that offers events to a pass-through over ``hops`` (topic keys) and
    meters its output. Its process is sampled as "baseline" (aiokafka) or "faust"."""
    topics = [f"{run.topic_prefix}{key}" for key in hops]
    passthrough = PassThrough(
        run.kafka, topics, batch_max=run.options.batch_max, framework=framework
    )

    async def body() -> dict[str, Any]:
        meter = OutputMeter(
            run.kafka, topics[-1], partitions=_PARTITIONS, id_field="event_id", nonce=run.nonce
        )
        await meter.start()
        try:
            phase = KafkaPhase(
                name,
                run.options,
                generator,
                meter,
                input_topic=topics[0],
                samplers=_samplers(
                    run, **{passthrough.process_name: passthrough.pid}, generator=generator.pid
                ),
                progress=run.progress,
            )
            return await use(phase)
        finally:
            await meter.stop()

    return dict(await _with_process(passthrough.start, lambda _: passthrough.stop(), body))


async def _warm_broker(run: _Run, generator: GeneratorHandle, ceiling: float) -> dict[str, Any]:
    # Well below what saturates this host (5,000/s did, and hid the warm-up: the broker took
    # what CPU there was), so the JVM's compiler threads have cores to work on.
    rate = min(WARM_UP_RATE, 0.25 * ceiling)
    run.progress(
        "broker warm-up: the raw pass-through until the broker's CPU per event settles"
        " (recorded in the result, not scored)"
    )
    return await _on_pass_through(
        run,
        generator,
        "broker warm-up",
        WARM_UP_HOPS,
        lambda phase: warm_up(
            phase.step,
            rate=rate,
            window_s=WARM_UP_WINDOW_S * run.options.scale,
            max_windows=WARM_UP_MAX_WINDOWS,
            progress=run.progress,
        ),
    )


async def _baseline(run: _Run, generator: GeneratorHandle, ceiling: float) -> dict[str, Any]:
    run.progress("baseline: starting the aiokafka consume→produce pass-through (2 hops)")
    start = run.options.baseline_start
    return await _on_pass_through(
        run,
        generator,
        "baseline",
        BASELINE_HOPS,
        lambda phase: _search_then_catch_up(phase, run.options, start, ceiling),
    )


async def _faust_floor(run: _Run, generator: GeneratorHandle, ceiling: float) -> dict[str, Any]:
    # The worker's framework with nothing to do: a backlog's catch-up only (a search would
    # add minutes and say the same), against the worker's own catch-up in the same run.
    run.progress(
        "faust floor: the worker's faust app, consumer and batching as a pass-through (2 hops,"
        " no work)"
    )

    async def catch_up(phase: KafkaPhase) -> dict[str, Any]:
        return {"catch_up": await _catch_up(phase, run.options, ceiling)}

    return await _on_pass_through(
        run, generator, "faust floor", FAUST_HOPS, catch_up, framework="faust"
    )


async def _search_then_catch_up(
    phase: KafkaPhase, options: BenchOptions, start: float, ceiling: float
) -> dict[str, Any]:
    result = await phase.search_and_measure(start, ceiling)
    result["catch_up"] = await _catch_up(phase, options, ceiling)
    return result


async def _catch_up(phase: KafkaPhase, options: BenchOptions, ceiling: float) -> dict[str, Any]:
    """The backlog every Kafka phase works off, at the offered rate capped at the ceiling."""
    return await phase.catch_up(options.catch_up_events, min(options.catch_up_rate, ceiling))


async def _gateway(run: _Run) -> dict[str, Any]:
    token = secrets.token_hex(16)
    port = free_port()
    serve = RouterProcess(
        "serve",
        run.child_env(
            OMNIROUTER_API__PORT=str(port),
            OMNIROUTER_INGRESS__TWILIO_AUTH_TOKEN=token,
            OMNIROUTER_INGRESS__SMTP_ENABLED="false",
            OMNIROUTER_DESKTOP__LIVE_UPDATES="false",
        ),
    )
    run.progress("gateway: starting one `omnirouter serve` (Twilio webhooks)")

    async def body() -> dict[str, Any]:
        return await gateway_phase(
            run.options,
            url=f"http://127.0.0.1:{port}/webhooks/twilio/messages",
            auth_token=token,
            samplers=_samplers(run, serve=serve.pid),
            progress=run.progress,
        )

    stop = _stopper(run, "gateway: the gateway", serve)
    return dict(await _with_process(_started(run, serve), stop, body))
