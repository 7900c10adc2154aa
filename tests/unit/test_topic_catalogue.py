"""The topic catalogue and the schemas generated from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from omnirouter.events import (
    ASYNCAPI_PATH,
    RETAIN_FOREVER,
    TOPICS,
    EventEnvelope,
    TopicSpec,
    export_schemas,
    message_models,
    render_schemas,
    schema_drift,
    topic_name,
    topic_spec,
)

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


def refs(node: Any) -> list[str]:
    """Every "$ref" value anywhere in a JSON document."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def resolve(document: Any, ref: str) -> Any:
    """Follow a local JSON pointer ("#/a/b") in `document`; KeyError if it leads nowhere."""
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node = document
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def asyncapi() -> Any:
    return orjson.loads(render_schemas()[ASYNCAPI_PATH])


def test_topic_keys_and_names_are_unique() -> None:
    assert len({spec.key for spec in TOPICS}) == len(TOPICS)
    assert len({topic_name(spec) for spec in TOPICS}) == len(TOPICS)


def test_every_topic_carries_an_event_model() -> None:
    for spec in TOPICS:
        assert issubclass(spec.model, EventEnvelope), spec.key


@pytest.mark.parametrize(
    ("key", "model", "key_description", "partitions", "retention_ms"),
    [
        ("interactions.inbound", "InteractionEvent", "phone:+15550102345", 12, SEVEN_DAYS_MS),
        ("interactions.resolved", "ResolvedInteraction", "customer_id", 12, SEVEN_DAYS_MS),
        ("interactions.outbound", "InteractionEvent", "customer_id", 12, SEVEN_DAYS_MS),
        ("customers.merged", "CustomerMerged", "surviving customer_id", 6, RETAIN_FOREVER),
        ("cases.routed", "CaseRouted", "customer_id", 12, SEVEN_DAYS_MS),
        ("routing.decisions", "RoutingDecision", "customer_id", 12, SEVEN_DAYS_MS),
        ("deadletter", "DeadLetter", "failed record", 3, 30 * 24 * 3600 * 1000),
    ],
)
def test_catalogue_entry_matches_the_architecture(
    key: str, model: str, key_description: str, partitions: int, retention_ms: int
) -> None:
    spec = topic_spec(key)
    assert spec.model.__name__ == model
    assert key_description in spec.key_description
    assert (spec.partitions, spec.retention_ms, spec.cleanup_policy) == (
        partitions,
        retention_ms,
        "delete",
    )


def test_topic_name_is_prefix_plus_key() -> None:
    spec = topic_spec("interactions.inbound")
    assert topic_name(spec) == "omni.interactions.inbound"
    assert spec.name("test-1a2b.") == "test-1a2b.interactions.inbound"


def test_prefix_that_makes_an_illegal_kafka_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="legal Kafka topic name"):
        topic_name(topic_spec("deadletter"), "omni/")


def test_unknown_topic_key_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"interactions\.inbound"):
        topic_spec("interactions.inbund")


def test_topic_spec_with_zero_partitions_is_rejected() -> None:
    with pytest.raises(ValueError, match="partitions"):
        TopicSpec("x.y", EventEnvelope, "k", 0, None, "delete", "d")


def test_asyncapi_document_has_a_channel_per_topic_at_its_topic_name() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "omnirouter"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {topic_name(spec) for spec in TOPICS}


def test_asyncapi_topic_prefix_and_version_are_applied() -> None:
    document = orjson.loads(render_schemas("staging.", "7")[ASYNCAPI_PATH])
    assert document["info"]["version"] == "7"
    assert "staging.deadletter" in {c["address"] for c in document["channels"].values()}


def test_every_asyncapi_ref_resolves_to_an_existing_path() -> None:
    document = asyncapi()
    found = refs(document)
    assert len(found) > 3 * len(TOPICS)  # channels, operations, messages and payload schemas
    for ref in found:
        resolve(document, ref)  # raises KeyError when the target is missing


def test_asyncapi_operation_messages_point_into_their_own_channel() -> None:
    document = asyncapi()
    for operation in document["operations"].values():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/")


def test_asyncapi_kafka_bindings_carry_topic_configuration_and_key() -> None:
    document = asyncapi()
    spec = topic_spec("customers.merged")
    channel = document["channels"]["customers_merged"]
    binding = channel["bindings"]["kafka"]
    assert binding["topic"] == "omni.customers.merged"
    assert binding["partitions"] == spec.partitions
    assert binding["replicas"] >= 1
    assert binding["topicConfiguration"] == {"cleanup.policy": ["delete"], "retention.ms": -1}
    message = resolve(document, channel["messages"]["CustomerMerged"]["$ref"])
    assert message["bindings"]["kafka"]["key"]["description"] == spec.key_description
    assert resolve(document, message["payload"]["$ref"])["title"] == "CustomerMerged"


def test_each_event_schema_file_has_id_title_and_self_contained_refs() -> None:
    files = render_schemas()
    for model in message_models():
        schema = orjson.loads(files[f"events/{model.__name__}.schema.json"])
        assert schema["title"] == model.__name__
        assert schema["$id"].startswith("urn:omnirouter:events:")
        for ref in refs(schema):
            resolve(schema, ref)


def test_rendering_is_deterministic_and_newline_terminated() -> None:
    first, second = render_schemas(), render_schemas()
    assert first == second
    assert list(first) == sorted(first)
    assert all(text.endswith("}\n") for text in first.values())


def test_exported_schemas_show_no_drift(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(render_schemas())
    assert schema_drift(tmp_path) == []


def test_edited_missing_and_stale_files_are_drift(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    (tmp_path / "events/DeadLetter.schema.json").write_text("{}\n")
    (tmp_path / ASYNCAPI_PATH).unlink()
    (tmp_path / "events/Retired.schema.json").write_text("{}\n")
    assert schema_drift(tmp_path) == [
        ASYNCAPI_PATH,
        "events/DeadLetter.schema.json",
        "events/Retired.schema.json",
    ]


def test_drift_against_a_different_prefix_is_reported(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    assert schema_drift(tmp_path, topic_prefix="other.") == [ASYNCAPI_PATH]


def test_export_repairs_drift_and_leaves_files_it_does_not_own(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events/Retired.schema.json").write_text("{}\n")
    (tmp_path / "routing-rules.schema.json").write_text("{}\n")
    export_schemas(tmp_path)
    assert schema_drift(tmp_path) == []
    assert not (tmp_path / "events/Retired.schema.json").exists()
    assert (tmp_path / "routing-rules.schema.json").read_text() == "{}\n"
