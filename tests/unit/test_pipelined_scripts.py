"""run_pipelined on a Redis Cluster where one master lost its script cache: only the calls it
refused go again (a call that ran must not run twice), and they go after the script is loaded."""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

from omnirouter.pipeline.scripts import run_pipelined

SOURCE = "return KEYS[1]"


class Script:
    script = SOURCE
    sha = hashlib.sha1(SOURCE.encode()).hexdigest()  # noqa: S324 - Redis's own hash


class HalfForgetfulCluster:
    """Keys whose slot is on the master that lost its cache (those starting "lost") are refused
    with NOSCRIPT until the script is loaded; the others run."""

    def __init__(self) -> None:
        self.loaded = False
        self.runs: list[str] = []

    async def script_load(self, source: str) -> str:
        assert source == SOURCE
        self.loaded = True
        return Script.sha

    def pipeline(self, *, transaction: bool = True) -> Pipeline:
        assert not transaction
        return Pipeline(self)


class Pipeline:
    def __init__(self, redis: HalfForgetfulCluster) -> None:
        self._redis = redis
        self._keys: list[str] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def execute_command(self, command: str, sha: str, numkeys: int, *rest: Any) -> None:
        assert (command, sha, numkeys) == ("EVALSHA", Script.sha, 1)
        self._keys.append(rest[0])

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        assert not raise_on_error  # the per-call results tell which calls ran
        results: list[Any] = []
        for key in self._keys:
            if key.startswith("lost") and not self._redis.loaded:
                results.append(NoScriptError("No matching script"))
            else:
                self._redis.runs.append(key)
                results.append(f"ran {key}")
        return results


async def test_only_the_calls_refused_for_a_lost_script_go_again() -> None:
    redis = HalfForgetfulCluster()
    calls = [(["kept-1"], ()), (["lost-1"], ()), (["kept-2"], ()), (["lost-2"], ())]
    replies = await run_pipelined(redis, Script(), calls)  # type: ignore[arg-type]
    assert replies == ["ran kept-1", "ran lost-1", "ran kept-2", "ran lost-2"]
    assert sorted(redis.runs) == ["kept-1", "kept-2", "lost-1", "lost-2"]  # each exactly once
    assert redis.runs[2:] == ["lost-1", "lost-2"]  # the refused ones, after the load
