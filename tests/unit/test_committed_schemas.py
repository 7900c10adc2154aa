"""The committed schemas/ folder is exactly what the event models generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omnirouter.events import schema_drift

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models() -> None:
    drift = schema_drift(SCHEMAS)
    assert drift == [], f"schemas/ drifted from the models: {drift}; run `make schemas`"


def test_schemas_check_command_fails_on_drift(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    cli = [sys.executable, "-m", "omnirouter.cli", "schemas", "export", "--out", str(out)]
    assert subprocess.run(cli, capture_output=True, check=False).returncode == 0
    assert subprocess.run([*cli, "--check"], capture_output=True, check=False).returncode == 0
    (out / "asyncapi.json").write_text("{}\n")
    result = subprocess.run([*cli, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "asyncapi.json" in result.stderr


def test_committed_routing_rules_schema_matches_the_model() -> None:
    from omnirouter.pipeline.routing.rules import RULES_SCHEMA_PATH, rules_json_schema

    assert (SCHEMAS / RULES_SCHEMA_PATH).read_text() == rules_json_schema(), "run `make schemas`"
