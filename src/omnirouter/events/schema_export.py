"""Generate the committed schemas: one JSON Schema per event, and an AsyncAPI topic catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from omnirouter.events.models import SCHEMA_VERSION
from omnirouter.events.topics import DEFAULT_TOPIC_PREFIX, TOPICS, TopicSpec, topic_name

__all__ = [
    "ASYNCAPI_PATH",
    "EVENT_SCHEMA_DIR",
    "export_schemas",
    "message_models",
    "render_schemas",
    "schema_drift",
]

ASYNCAPI_PATH = "asyncapi.json"
EVENT_SCHEMA_DIR = "events"
_SCHEMA_SUFFIX = ".schema.json"
_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_KAFKA_BINDING_VERSION = "0.5.0"
_COMPONENT_SCHEMA_REF = "#/components/schemas/{model}"


def message_models() -> tuple[type[BaseModel], ...]:
    """Return each model carried by some topic, once, in catalogue order."""
    return tuple(dict.fromkeys(spec.model for spec in TOPICS))


def render_schemas(
    topic_prefix: str = DEFAULT_TOPIC_PREFIX, api_version: str = str(SCHEMA_VERSION)
) -> dict[str, str]:
    """Return every generated file as relative path -> text, deterministically."""
    files = {
        f"{EVENT_SCHEMA_DIR}/{model.__name__}{_SCHEMA_SUFFIX}": _dump(_event_schema(model))
        for model in message_models()
    }
    files[ASYNCAPI_PATH] = _dump(_asyncapi_document(topic_prefix, api_version))
    return dict(sorted(files.items()))


def export_schemas(
    out_dir: Path,
    topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    api_version: str = str(SCHEMA_VERSION),
) -> list[Path]:
    """Write the generated files under `out_dir`, drop stale event schemas, return the paths."""
    rendered = render_schemas(topic_prefix, api_version)
    written = []
    for relative, text in rendered.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        # Rewrite only what changed, so unchanged files keep their mtime for make-style tools.
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    for stale in _stale_event_schemas(out_dir, rendered):
        (out_dir / stale).unlink()
    return written


def schema_drift(
    out_dir: Path,
    topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    api_version: str = str(SCHEMA_VERSION),
) -> list[str]:
    """Return the relative paths under `out_dir` that are missing, stale or differ."""
    rendered = render_schemas(topic_prefix, api_version)
    drifted = [
        relative
        for relative, text in rendered.items()
        if not (out_dir / relative).is_file()
        or (out_dir / relative).read_bytes() != text.encode("utf-8")
    ]
    drifted.extend(_stale_event_schemas(out_dir, rendered))
    return sorted(drifted)


def _stale_event_schemas(out_dir: Path, rendered: dict[str, str]) -> list[str]:
    # Only files this module owns: schemas/ also holds files other tools generate.
    directory = out_dir / EVENT_SCHEMA_DIR
    if not directory.is_dir():
        return []
    on_disk = (f"{EVENT_SCHEMA_DIR}/{p.name}" for p in directory.glob(f"*{_SCHEMA_SUFFIX}"))
    return sorted(relative for relative in on_disk if relative not in rendered)


def _dump(document: dict[str, Any]) -> str:
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return text.decode("utf-8") + "\n"


def _event_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = _JSON_SCHEMA_DIALECT
    schema["$id"] = f"urn:omnirouter:events:{model.__name__}:v{SCHEMA_VERSION}"
    schema["title"] = model.__name__
    return schema


def _component_schemas() -> dict[str, Any]:
    # Each model's $defs are lifted to components.schemas so every $ref resolves in one document;
    # no $id is set there, since a nested $id would change the base that "#/..." refs resolve to.
    schemas: dict[str, Any] = {}
    for model in message_models():
        schema = model.model_json_schema(ref_template=_COMPONENT_SCHEMA_REF)
        lifted = {model.__name__: schema, **schema.pop("$defs", {})}
        for name, definition in lifted.items():
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas are both named {name!r}")
    return schemas


def _channel_id(spec: TopicSpec) -> str:
    return spec.key.replace(".", "_")


def _message_id(spec: TopicSpec) -> str:
    # One message per channel, not per model: the Kafka key binding differs between topics
    # that carry the same model (inbound vs outbound interactions).
    return f"{_channel_id(spec)}.{spec.model.__name__}"


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0]


def _asyncapi_document(topic_prefix: str, api_version: str) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS:
        channel_id, message_id = _channel_id(spec), _message_id(spec)
        model_name = spec.model.__name__
        name = topic_name(spec, topic_prefix)
        topic_configuration: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
        if spec.retention_ms is not None:
            topic_configuration["retention.ms"] = spec.retention_ms
        channels[channel_id] = {
            "address": name,
            "title": spec.key,
            "description": spec.description,
            "messages": {model_name: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "kafka": {
                    "topic": name,
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "topicConfiguration": topic_configuration,
                    "bindingVersion": _KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"send_{channel_id}"] = {
            "action": "send",
            "summary": f"omnirouter produces {model_name} records to {name}.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{model_name}"}],
        }
        messages[message_id] = {
            "name": model_name,
            "title": model_name,
            "summary": _summary(spec.model),
            "contentType": "application/json",
            "payload": {"$ref": _COMPONENT_SCHEMA_REF.format(model=model_name)},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": spec.key_description},
                    "bindingVersion": _KAFKA_BINDING_VERSION,
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "omnirouter",
            "version": api_version,
            "description": (
                "Kafka topics of the omnirouter omni-channel message router. Topic names use "
                f"the prefix {topic_prefix!r}; every payload is UTF-8 JSON carrying "
                "schema_version, and records no stage can process go to the dead-letter topic."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _component_schemas()},
    }
