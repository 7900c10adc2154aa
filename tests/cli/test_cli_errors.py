"""Operator mistakes end with one readable line and a non-zero exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnirouter.devstack.network import free_port

OMNIROUTER = [sys.executable, "-m", "omnirouter.cli"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNIROUTER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *, needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("omnirouter: error: ")
    assert needle in lines[0]


def test_invalid_setting_value_names_the_variable() -> None:
    result = _run(["check"], _clean_env(OMNIROUTER_LOG__LEVEL="LOUD"))
    _assert_one_line_error(result, needle="OMNIROUTER_LOG__LEVEL")
    assert result.returncode == 2


def test_misspelt_nested_setting_is_rejected() -> None:
    result = _run(["check"], _clean_env(OMNIROUTER_KAFKA__BOOTSTRAP_SERVER="127.0.0.1:9092"))
    _assert_one_line_error(result, needle="OMNIROUTER_KAFKA__BOOTSTRAP_SERVER")
    assert result.returncode == 2


def test_misspelt_section_name_is_rejected() -> None:
    result = _run(["check"], _clean_env(OMNIROUTER_KAFAK__BOOTSTRAP_SERVERS="127.0.0.1:9092"))
    _assert_one_line_error(result, needle="OMNIROUTER_KAFAK__BOOTSTRAP_SERVERS")
    assert result.returncode == 2


def test_malformed_bootstrap_address_is_rejected() -> None:
    result = _run(["check"], _clean_env(OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS="localhost"))
    _assert_one_line_error(result, needle="not host:port")


def test_unreachable_broker_exits_non_zero_with_one_line() -> None:
    port = free_port()  # nothing listens there
    env = _clean_env(
        OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
        OMNIROUTER_KAFKA__CONNECT_TIMEOUT_S="2",
        OMNIROUTER_REDIS__URL="redis://127.0.0.1:1/0",
    )
    for command in (["check"], ["run"]):
        result = _run(command, env)
        _assert_one_line_error(result, needle=f"127.0.0.1:{port} did not answer")
        assert result.returncode == 1


def test_missing_build_tool_says_what_to_install(tmp_path: Path) -> None:
    # A PATH without java, mvn or redis-server: the first one needed (mvn, to fetch the broker)
    # is named with how to install it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = _clean_env(
        PATH=str(bin_dir),
        OMNIROUTER_DEVSTACK__STATE_DIR=str(tmp_path / "state"),
        OMNIROUTER_DEVSTACK__CACHE_DIR=str(tmp_path / "cache"),
    )
    result = _run(["devstack", "up"], env)
    _assert_one_line_error(result, needle="not found on PATH: install")
    assert result.returncode == 3


@pytest.mark.parametrize(
    "args", [["--version"], ["devstack", "--help"], ["schemas", "export", "--help"]]
)
def test_help_and_version_answer(args: list[str]) -> None:
    result = _run(args, _clean_env())
    assert result.returncode == 0
    assert result.stdout.strip()
