"""The AsyncAPI 3.0 document of CalHub's events, generated from the registered contracts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.bus.message import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION, HEADER_TRACEPARENT
from shared.contracts.base import EventTypeRegistry, Topic
from shared.envelope import Envelope

_REF = "#/components/schemas/{model}"


def _message_key(event_type: str) -> str:
    return event_type.replace(".", "_")


def asyncapi_document(
    registry: EventTypeRegistry,
    *,
    version: str,
    consumers: Mapping[str, Sequence[str]] | None = None,
    topic_prefix: str = "calhub.",
) -> dict[str, Any]:
    """Build the document: a channel per topic (and its dead letters), a message per event type, a `send`
    operation per owning service and a `receive` operation per consumer group given in `consumers`
    (group name -> event types it handles)."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    by_topic: dict[Topic, list[str]] = {}

    for model in registry:
        key = _message_key(model.event_type)
        schema = Envelope[model].model_json_schema(ref_template=_REF)  # type: ignore[valid-type]
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = definition
        schema_name = f"{model.__name__}Event"
        schemas[schema_name] = schema
        messages[key] = {
            "name": model.event_type,
            "title": model.event_type,
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/KafkaHeaders"},
            "payload": {"$ref": _REF.format(model=schema_name)},
            "correlationId": {"$ref": "#/components/correlationIds/lineage"},
            "x-schema-version": model.schema_version,
        }
        by_topic.setdefault(model.topic, []).append(key)

    for topic, keys in sorted(by_topic.items(), key=lambda item: item[0].name):
        refs = {k: {"$ref": f"#/components/messages/{k}"} for k in sorted(keys)}
        channels[topic.name] = {
            "address": f"{topic_prefix}{topic.name}",
            "description": f"Events of the {topic.aggregate} aggregate, owned by the {topic.service} service; "
                           "keyed by the aggregate id.",
            "messages": refs,
            "bindings": {"kafka": {"bindingVersion": "0.5.0"}},
        }
        channels[topic.dead_letters] = {
            "address": f"{topic_prefix}{topic.dead_letters}",
            "description": f"Dead letters of {topic.name}: the original message with the error in "
                           "calhub-dlq-* headers.",
            "messages": refs,
        }
        operations[f"{topic.service}.send.{topic.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "messages": [{"$ref": f"#/channels/{topic.name}/messages/{k}"} for k in sorted(keys)],
        }

    for group, event_types in sorted((consumers or {}).items()):
        per_topic: dict[str, list[str]] = {}
        for event_type in event_types:
            model = registry.get(event_type)
            per_topic.setdefault(model.topic.name, []).append(_message_key(event_type))
        for topic_name, keys in sorted(per_topic.items()):
            operations[f"{group}.receive.{topic_name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic_name}"},
                "messages": [{"$ref": f"#/channels/{topic_name}/messages/{k}"} for k in sorted(keys)],
                "bindings": {"kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": "0.5.0"}},
            }

    schemas["KafkaHeaders"] = {
        "type": "object",
        "properties": {
            HEADER_EVENT_TYPE: {"type": "string"},
            HEADER_EVENT_ID: {"type": "string", "format": "uuid"},
            HEADER_SCHEMA_VERSION: {"type": "string"},
            HEADER_TRACEPARENT: {"type": "string", "description": "W3C trace context"},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "CalHub events",
            "version": version,
            "description": "Every event CalHub services publish. Topics are `<service>.<aggregate>.v<major>`, "
                           "keyed by the aggregate id; schemas evolve additively within a major version.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "correlationIds": {
                "lineage": {"description": "Shared by every event of one business flow.",
                            "location": "$message.payload#/correlation_id"},
            },
        },
    }
