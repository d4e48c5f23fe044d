"""Broker-neutral messages, the wire codec for envelopes, and the errors handlers raise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.contracts.base import EVENT_TYPES, EventTypeRegistry, UnknownEventType
from shared.envelope import Envelope

Headers = tuple[tuple[str, bytes], ...]

HEADER_EVENT_TYPE = "calhub-event-type"
HEADER_EVENT_ID = "calhub-event-id"
HEADER_SCHEMA_VERSION = "calhub-schema-version"
HEADER_TRACEPARENT = "traceparent"
HEADER_CONTENT_TYPE = "content-type"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish. `topic` is the logical name; the bus adds any deployment prefix."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message as consumed, with its position in the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    delivery: int = field(default=1, compare=False)

    def header(self, name: str) -> str | None:
        """The last value of a header, decoded, or None."""
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode("utf-8", "replace")
        return None


class HandlerError(Exception):
    """Base of errors a handler raises on purpose."""


class RetryableError(HandlerError):
    """A transient failure (a peer down, a lock timeout): retry with backoff, then dead-letter."""


class PermanentError(HandlerError):
    """The message can never succeed as it is (bad schema, broken invariant): dead-letter at once."""


class MalformedEvent(PermanentError):
    """The bytes are not a valid envelope for their declared type."""


def encode(envelope: Envelope[Any]) -> OutgoingMessage:
    """Serialize an envelope for the bus: keyed by subject, type and trace context in headers."""
    headers: list[tuple[str, bytes]] = [
        (HEADER_EVENT_TYPE, envelope.type.encode()),
        (HEADER_EVENT_ID, str(envelope.id).encode()),
        (HEADER_SCHEMA_VERSION, str(envelope.schema_version).encode()),
        (HEADER_CONTENT_TYPE, b"application/json"),
    ]
    if envelope.traceparent:
        headers.append((HEADER_TRACEPARENT, envelope.traceparent.encode()))
    return OutgoingMessage(
        topic=envelope.topic, key=envelope.subject.encode(), value=envelope.to_json(), headers=tuple(headers)
    )


def decode(message: IncomingMessage, registry: EventTypeRegistry = EVENT_TYPES) -> Envelope[Any]:
    """Parse and validate a consumed message; raises UnknownEventType or MalformedEvent."""
    try:
        raw = json.loads(message.value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"value is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise MalformedEvent("value is not an event envelope: missing string field 'type'")
    model = registry.get(raw["type"])  # UnknownEventType propagates: skipped and counted, not dead-lettered
    try:
        return Envelope[model].model_validate(raw)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise MalformedEvent(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    # Field paths and rule names only: input values may carry PHI and must not reach the dead-letter headers.
    parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['type']} ({err['msg']})" for err in exc.errors()]
    return "schema validation failed: " + "; ".join(parts)


__all__ = [
    "HEADER_CONTENT_TYPE",
    "HEADER_EVENT_ID",
    "HEADER_EVENT_TYPE",
    "HEADER_SCHEMA_VERSION",
    "HEADER_TRACEPARENT",
    "Headers",
    "IncomingMessage",
    "MalformedEvent",
    "OutgoingMessage",
    "PermanentError",
    "RetryableError",
    "UnknownEventType",
    "decode",
    "encode",
]
