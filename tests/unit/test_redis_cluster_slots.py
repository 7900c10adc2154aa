"""Every Lua script runs on one Redis Cluster hash slot: the keys each store passes, and every key
a script builds from a stem in ARGV, hash to the slot of the script's first key.

The stores run against a recording client that answers nothing: each script call is captured as
the stores make it (keys and arguments), then the slots are computed with redis-py's own
``key_slot``, as a cluster client routes the call. The Lua sources are read too, so that a new
script cannot build a key from anything but KEYS or such a stem.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import key_slot

from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.dispatcher.claims import DispatchClaims
from omnirouter.pipeline.identity.erasure import StateErasure
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.settings import CaseSettings

TENANTS = ["default", "acme", "tenant-7.eu", "x"]
CUSTOMERS = ["cus_0123456789abcdef", "cus_a", "cus_ffff0000ffff0000"]
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


class _AnsweredError(Exception):
    """Raised by the recording client instead of answering: the call was captured."""


class _Call:
    def __init__(self, script: str, keys: list[Any], args: list[Any]) -> None:
        self.script = script
        self.keys = [_text(k) for k in keys]
        self.args = [_text(a) for a in args]


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class _RecordingScript:
    def __init__(self, client: _RecordingClient, source: str) -> None:
        self._client, self.script = client, source
        # As redis-py's Script: its SHA is known up front, for EVALSHA in pipelines.
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's own hash
        client.loaded[self.sha] = source

    async def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None) -> Any:
        return self._client.answer(self.script, list(keys or []), list(args or []))


class _RecordingPipeline:
    def __init__(self, client: _RecordingClient) -> None:
        self._client = client
        self._queued: list[tuple[str, list[Any], list[Any]]] = []

    async def __aenter__(self) -> _RecordingPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def execute_command(self, command: str, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        assert command == "EVALSHA", f"unexpected pipelined {command}"
        source = self._client.loaded[sha]
        self._queued.append((source, list(keys_and_args[:numkeys]), list(keys_and_args[numkeys:])))

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        # Every queued call is captured before the first unanswered one is reported.
        results, unanswered = [], None
        for call in self._queued:
            try:
                results.append(self._client.answer(*call))
            except _AnsweredError as exc:
                unanswered = exc
        if unanswered is not None:
            raise unanswered
        return results


class _RecordingClient:
    """Captures script calls; ``answers`` maps a script's file name to what it returns."""

    def __init__(self, answers: dict[str, Callable[[], Any]] | None = None) -> None:
        self.calls: list[_Call] = []
        self.loaded: dict[str, str] = {}
        self._answers = answers or {}

    def register_script(self, source: str) -> _RecordingScript:
        return _RecordingScript(self, source)

    async def script_load(self, source: str) -> str:
        sha = f"sha-{len(self.loaded)}"
        self.loaded[sha] = source
        return sha

    def pipeline(self, *, transaction: bool = True) -> _RecordingPipeline:
        return _RecordingPipeline(self)

    async def sadd(self, *_: Any) -> int:
        return 1

    async def hgetall(self, *_: Any) -> dict[bytes, bytes]:
        return {}

    def answer(self, source: str, keys: list[Any], args: list[Any]) -> Any:
        name = _SCRIPT_NAMES[source]
        self.calls.append(_Call(name, keys, args))
        if name in self._answers:
            return self._answers[name]()
        raise _AnsweredError(name)


def _lua_sources() -> dict[str, str]:
    found = {}
    for package in ("identity", "cases", "routing"):
        folder = resources.files(f"omnirouter.pipeline.{package}").joinpath("lua")
        for entry in folder.iterdir():
            if entry.name.endswith(".lua"):
                found[entry.read_text()] = entry.name
    return found


_SCRIPT_NAMES = _lua_sources()


def _dispatch_claim_source() -> str:
    from omnirouter.pipeline.dispatcher import claims

    return str(claims._CLAIM)  # the one script that is not a file: a single-key claim


_SCRIPT_NAMES[_dispatch_claim_source()] = "dispatch claim"
_SOURCES = {name: source for source, name in _SCRIPT_NAMES.items()}


def _assert_one_slot(call: _Call) -> None:
    assert call.keys, f"{call.script}: a script without keys runs on a random cluster node"
    slots = {key_slot(k.encode()) for k in call.keys}
    assert len(slots) == 1, f"{call.script}: KEYS on {len(slots)} slots: {call.keys}"
    # A hash-tagged argument is a stem the script appends to: it must hash to the same slot.
    stems = [a for a in call.args if isinstance(a, str) and re.match(r"\{[^\"{}]+\}", a)]
    if re.search(r"local stem\b", _SOURCES[call.script]):
        # The script builds keys from ARGV[1]: it must be one of those hash-tagged stems.
        assert call.args and call.args[0] in stems, f"{call.script}: ARGV[1] is no stem"
    for stem in stems:
        built = f"{stem}anything:else"
        assert key_slot(built.encode()) in slots, f"{call.script}: stem {stem} on another slot"


async def _capture(client: _RecordingClient, action: Callable[[], Awaitable[Any]]) -> list[_Call]:
    before = len(client.calls)
    with contextlib.suppress(_AnsweredError):
        await action()
    calls = client.calls[before:]
    assert calls, "the action made no script call"
    return calls


@pytest.mark.parametrize("tenant", TENANTS)
async def test_identity_scripts_run_on_the_tenants_identity_slot(tenant: str) -> None:
    client = _RecordingClient()
    store = RedisIdentityStore(client, key_prefix="omni", policy=IdentityPolicy())  # type: ignore[arg-type]
    request = ResolveRequest(event_id=uuid.uuid4(), identifiers=(), customer_hint=None)
    calls = [
        *await _capture(client, lambda: store.resolve_batch(tenant, [request])),
        *await _capture(client, lambda: store.unmerge(tenant, CUSTOMERS[0], CUSTOMERS[1])),
    ]
    assert [c.script for c in calls] == ["resolve.lua", "unmerge.lua"]
    for call in calls:
        _assert_one_slot(call)
        assert call.args[0] == store.keys(tenant).customer_stem


@pytest.mark.parametrize("tenant", TENANTS)
async def test_a_case_batch_is_one_script_per_customer_each_on_its_own_slot(tenant: str) -> None:
    client = _RecordingClient()
    store = RedisCaseStore(client, key_prefix="omni", settings=CaseSettings())  # type: ignore[arg-type]
    work = {(tenant, customer): [{"type": "noop"}] for customer in CUSTOMERS}
    calls = await _capture(client, lambda: store.apply(work))
    calls += await _capture(client, lambda: store.export(tenant, CUSTOMERS[1], CUSTOMERS[0]))
    assert [c.script for c in calls] == ["apply.lua"] * len(CUSTOMERS) + ["export.lua"]
    for call in calls:
        _assert_one_slot(call)
    # Customers spread over the cluster instead of piling onto one node.
    assert len({key_slot(c.keys[0].encode()) for c in calls[: len(CUSTOMERS)]}) > 1


@pytest.mark.parametrize("tenant", TENANTS)
async def test_routing_scripts_run_on_the_tenants_routing_slot(tenant: str) -> None:
    client = _RecordingClient()
    store = RoutingStore(client, key_prefix="omni")  # type: ignore[arg-type]
    actions: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.route(tenant, {"case_id": "case_1", "queue": "vip support"}),
        lambda: store.respond(tenant, "case_1", "alex", "accept", NOW),
        lambda: store.release(tenant, "case_1", NOW),
        lambda: store.assign(tenant, "case_1", "sam", "sms", "general", NOW),
        lambda: store.due_timers(tenant, NOW),
        lambda: store.upsert_agent(tenant, "alex", presence="available", now=NOW),
    ]
    calls = [call for action in actions for call in await _capture(client, action)]
    assert sorted(c.script for c in calls) == sorted(
        ["route.lua", "respond.lua", "release.lua", "assign.lua", "timers.lua", "presence.lua"]
    )
    for call in calls:
        _assert_one_slot(call)
    queue_stem = store.keys(tenant).queue_stem
    assert key_slot(f"{queue_stem}vip support".encode()) == key_slot(calls[0].keys[0].encode())


@pytest.mark.parametrize("tenant", TENANTS)
async def test_erasure_scripts_each_run_on_one_slot(tenant: str) -> None:
    person = (
        b'{"found": 1, "root": "cus_a", "customers": ["cus_a", "cus_0123456789abcdef"], '
        b'"addresses": [], "merges": 0, "splits": 0, "keys": 0}'
    )
    client = _RecordingClient(
        {
            "erase_identity.lua": lambda: person,
            "erase_cases.lua": lambda: b'{"cases": ["case_1"], "keys": 0}',
        }
    )
    erasure = StateErasure(client, key_prefix="omni")  # type: ignore[arg-type]
    calls = await _capture(client, lambda: erasure.plan("cus_a", tenant=tenant))
    assert [c.script for c in calls] == [
        "erase_identity.lua",
        "erase_cases.lua",
        "erase_cases.lua",
        "erase_routing.lua",
    ]
    for call in calls:
        _assert_one_slot(call)


async def test_a_delivery_claim_is_a_single_key_script() -> None:
    client = _RecordingClient()
    claims = DispatchClaims(client, key_prefix="omni", ttl_s=60, lease_s=5)  # type: ignore[arg-type]
    calls = await _capture(client, lambda: claims.claim(uuid.uuid4()))
    assert len(calls) == 1 and len(calls[0].keys) == 1


# --- the Lua sources themselves -------------------------------------------------------------

_CALL = re.compile(r"redis\.p?call\(\s*'(?P<command>[A-Za-z]+)'\s*,\s*(?P<first>[^,)]+)")
# What a script may name a key with: KEYS, a stem variable from ARGV[1] (the store passes one
# inside the same hash tag, checked above), or a local bound to one of those.
_ALLOWED_KEY = re.compile(r"^(KEYS\[[0-9a-z]+\]|unpack\(KEYS|stem\b|key$)")
# Commands whose first argument is not a key.
_KEYLESS = {"TIME"}


@pytest.mark.parametrize("name", sorted(set(_SCRIPT_NAMES.values()) - {"dispatch claim"}))
def test_scripts_build_keys_only_from_keys_or_a_hash_tagged_stem(name: str) -> None:
    source = next(s for s, n in _SCRIPT_NAMES.items() if n == name)
    for match in _CALL.finditer(source):
        if match["command"].upper() in _KEYLESS:
            continue
        first = match["first"].strip()
        assert _ALLOWED_KEY.match(first), f"{name}: {match['command']} on {first!r}"
    for assignment in re.findall(r"local stem(?:, \w+)* = ([^\n]+)", source):
        assert assignment.startswith("ARGV[1]"), f"{name}: stem is not ARGV[1]: {assignment}"
    for assignment in re.findall(r"local key = ([^\n]+)", source):
        assert assignment.startswith("stem .."), f"{name}: key built from {assignment}"
    assert "ARGV" not in "".join(m["first"] for m in _CALL.finditer(source))


def test_every_lua_file_is_covered() -> None:
    on_disk = {
        p.name for p in Path(__file__).parents[2].glob("src/omnirouter/pipeline/*/lua/*.lua")
    }
    assert on_disk == set(_SCRIPT_NAMES.values()) - {"dispatch claim"}
