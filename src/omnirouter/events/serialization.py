"""Bytes in, events out: the one place events are encoded for and decoded from Kafka."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from omnirouter.events.models import SUPPORTED_SCHEMA_VERSIONS, DeadLetter

__all__ = ["UndecodableEvent", "decode", "decode_or_dead_letter", "encode"]

EventT = TypeVar("EventT", bound=BaseModel)

# Enough to see what is wrong without turning a dead letter's reason into a novel.
_MAX_REPORTED_ERRORS = 3


class UndecodableEvent(Exception):  # noqa: N818 - names the condition; "Error" adds nothing
    """Raised when bytes from Kafka are not a valid event of the expected type."""

    def __init__(self, reason: str, *, code: str) -> None:
        """Record a human-readable `reason` and a stable machine `code` for counting."""
        super().__init__(reason)
        self.reason = reason
        self.code = code


def encode(event: BaseModel) -> bytes:
    """Serialize an event to the JSON bytes written to Kafka."""
    # Straight to bytes in pydantic-core: the same compact JSON as orjson over model_dump,
    # without building the intermediate dict (every record of every stage goes through here).
    return event.__pydantic_serializer__.to_json(event)


def decode(model_cls: type[EventT], raw: bytes) -> EventT:
    """Parse and validate `raw` as `model_cls`, raising `UndecodableEvent` with a clear reason."""
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson rejects bad UTF-8 as a JSON error; tell them apart only on this rare path.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UndecodableEvent("invalid UTF-8", code="invalid_utf8") from exc
        raise UndecodableEvent(f"invalid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(obj, dict):
        raise UndecodableEvent("not a JSON object", code="not_an_object")
    _check_schema_version(obj)
    try:
        return model_cls.model_validate(obj)
    except ValidationError as exc:
        raise UndecodableEvent(_describe(exc), code="validation_failed") from exc


def decode_or_dead_letter(
    model_cls: type[EventT],
    raw_value: bytes,
    raw_key: bytes | None,
    *,
    stage: str,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> EventT | DeadLetter:
    """Decode `raw_value`, or return the `DeadLetter` that keeps it and says why it failed."""
    try:
        return decode(model_cls, raw_value)
    except UndecodableEvent as exc:
        return DeadLetter.for_payload(
            raw_value,
            raw_key,
            stage=stage,
            reason=exc.reason,
            error_type=f"{type(exc).__name__}.{exc.code}",
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            headers=headers,
        )


def _check_schema_version(obj: dict[str, Any]) -> None:
    # Checked before full validation: a newer producer's event would also fail on new fields,
    # and "unknown schema_version" is the reason that tells ops what actually happened.
    version = obj.get("schema_version")
    is_int = isinstance(version, int) and not isinstance(version, bool)
    if is_int and version not in SUPPORTED_SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
        raise UndecodableEvent(
            f"unknown schema_version {version} (this consumer knows {known})",
            code="unknown_schema_version",
        )


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        path = ".".join(str(part) for part in error["loc"]) or "<event>"
        parts.append(f"{path}: {error['msg']}")
    more = len(errors) - _MAX_REPORTED_ERRORS
    suffix = f" (+{more} more)" if more > 0 else ""
    return f"validation failed: {'; '.join(parts)}{suffix}"
