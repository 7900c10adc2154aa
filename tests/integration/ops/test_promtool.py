"""The Prometheus rules, their unit tests and the example config pass promtool; the rules and
the Grafana dashboard only use series omnirouter exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from omnirouter.ops.lag import LagCollector, LagMonitor
from omnirouter.ops.metrics import REGISTRY
from omnirouter.ops.queues import QueueStateCollector

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
INSTALL_HINT = (
    "promtool is missing: `make ops-deps` installs it (Debian: sudo apt-get install prometheus)"
)


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from PATH; under CI a missing promtool is a failure, never a skip."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_alerting_rules_are_valid(promtool: str) -> None:
    result = run(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerting_rules_fire_as_their_unit_tests_expect(promtool: str) -> None:
    result = run(promtool, "test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_example_scrape_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _sample_names(families: list[Metric]) -> set[str]:
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
    }
    # Family names too: annotations may name a histogram as a whole.
    names = {f.name for f in families}
    return names | {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


def test_rules_and_dashboard_use_only_series_omnirouter_exports() -> None:
    """A misspelt metric name in an alert never fires: every name must be one we export."""
    lag = LagCollector(LagMonitor("127.0.0.1:9", window=3))
    queues = QueueStateCollector(None, None)  # type: ignore[arg-type]  # collect() only
    exported = _sample_names([*REGISTRY.collect(), *lag.describe(), *queues.collect()])
    used = re.compile(r"\b(?:omnirouter|kafka)_[a-z_]+\b")
    rules = (PROMETHEUS / "rules.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana" / "omnirouter.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    assert exprs, "the dashboard has no queries"
    # Job names (omnirouter-serve) use dashes and never match; "kafka_consumergroup_*" in a
    # comment names a family of series, not one.
    names = {n for n in used.findall(rules + "\n".join(exprs)) if not n.endswith("_")}
    assert names, "no series found"
    assert names <= exported, f"not exported: {sorted(names - exported)}"
