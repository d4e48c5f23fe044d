"""What the journal keeps of one consumed message: envelope metadata, dead-letter facts and referenced ids.

Pure: bytes in, a `JournalRecord` out. Anything can arrive on a topic (a newer event type, a message that is
not JSON at all), so nothing here raises for content. Only identifiers that cannot be PHI reach the indexed
columns: a value shaped like a CIN is dropped, a member id must be CalHub's internal `mbr_` id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.bus.base import (
    DLQ_SUFFIX,
    HEADER_DLQ_ATTEMPTS,
    HEADER_DLQ_ERROR,
    HEADER_DLQ_ERROR_TYPE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_TOPIC,
)
from shared.bus.message import HEADER_EVENT_ID, HEADER_EVENT_TYPE
from shared.bus.replay import HEADER_REPLAYED_FROM

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_MEMBER_ID = re.compile(r"^mbr_[0-9a-f]{24}$")
# A CIN (8 digits and a letter), alone or as the start of a 14-character BIC id: never indexed.
_CIN_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{8}[A-Z]([0-9A-Z]{5})?(?![0-9A-Za-z])")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
_ERROR_LIMIT = 4000

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetterFacts:
    """Why and where a dead letter came from, from the headers the bus attached."""

    consumer_group: str
    error_type: str
    error: str
    attempts: int
    original_topic: str
    original_partition: int | None
    original_offset: int | None


@dataclass(frozen=True)
class JournalRecord:
    """One consumed message as the journal stores it."""

    entry_key: str
    topic: str
    partition: int
    offset: int
    event_id: UUID | None
    event_type: str | None
    schema_version: int | None
    occurred_at: datetime | None
    source: str | None
    subject: str | None
    member_id: str | None
    correlation_id: UUID | None
    causation_id: UUID | None
    traceparent: str | None
    trace_id: str | None
    mcp_code: str | None
    replayed_from: str | None
    references: tuple[tuple[str, str], ...]
    data: Mapping[str, Any] | None = field(default=None, compare=False)
    dead_letter: DeadLetterFacts | None = None

    @property
    def is_dead_letter(self) -> bool:
        """True for a message read from a `.dlq` topic."""
        return self.dead_letter is not None

    @property
    def position(self) -> str:
        """`<topic>/<partition>/<offset>`, the form replays cite in their `calhub-replayed-from` header."""
        return f"{self.topic}/{self.partition}/{self.offset}"


def header(headers: Headers, name: str) -> str | None:
    """The last value of a header, decoded leniently, or None."""
    for key, value in reversed(headers):
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C traceparent, or None if it is missing or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def safe_identifier(value: object, *, limit: int = 200) -> str | None:
    """An id fit for an index: a short token without spaces that does not look like a CIN; else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > limit or not _IDENTIFIER.match(text) or _CIN_LIKE.search(text):
        return None
    return text


def member_id(value: object) -> str | None:
    """CalHub's internal member id (`mbr_` + 24 hex), or None for anything else (never a CIN)."""
    return value if isinstance(value, str) and _MEMBER_ID.match(value) else None


def references_in(data: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The aggregate ids an event's data names at its top level (`referral_id`, `claim_id`, ...).

    Organization ids are left out (a timeline of a CBO would be every event of it) and so is anything naming a
    member (`mcp_member_id` is the MCP's member number: PHI).
    """
    if not data:
        return ()
    found: list[tuple[str, str]] = []
    for name, value in data.items():
        if not name.endswith("_id") or "member" in name or "organization" in name or len(name) > 60:
            continue
        identifier = safe_identifier(value)
        if identifier is not None:
            found.append((name, identifier))
    return tuple(sorted(found))


def _uuid(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _short(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


def _envelope(value: bytes) -> Mapping[str, Any] | None:
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _dead_letter_facts(topic: str, headers: Headers) -> DeadLetterFacts:
    original = header(headers, HEADER_DLQ_TOPIC) or topic.removesuffix(DLQ_SUFFIX)
    return DeadLetterFacts(
        consumer_group=(header(headers, HEADER_DLQ_GROUP) or "unknown")[:100],
        error_type=(header(headers, HEADER_DLQ_ERROR_TYPE) or "unknown")[:200],
        error=(header(headers, HEADER_DLQ_ERROR) or "")[:_ERROR_LIMIT],
        attempts=_int(header(headers, HEADER_DLQ_ATTEMPTS)) or 0,
        original_topic=original[:200],
        original_partition=_int(header(headers, HEADER_DLQ_PARTITION)),
        original_offset=_int(header(headers, HEADER_DLQ_OFFSET)),
    )


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def journal_record(topic: str, partition: int, offset: int, value: bytes, headers: Headers) -> JournalRecord:
    """Read a consumed message into a JournalRecord; never raises for the message's content.

    The entry key makes journaling idempotent across redeliveries and restarts of the in-process bus (whose
    offsets start again at 0): an event is known by its topic and id; a dead letter by its event, group and
    original position (the same event can be dead-lettered again after a replay); a replay by the dead letter
    it came from; a message without an event id by its position and content hash.
    """
    envelope = _envelope(value)
    data_raw = envelope.get("data") if envelope is not None else None
    data: Mapping[str, Any] | None = data_raw if isinstance(data_raw, dict) else None
    event_id = _uuid(envelope.get("id")) if envelope else None
    event_id = event_id or _uuid(header(headers, HEADER_EVENT_ID))
    event_type = _short(envelope.get("type"), 100) if envelope else None
    event_type = event_type or _short(header(headers, HEADER_EVENT_TYPE), 100)
    traceparent_raw = (_short(envelope.get("traceparent"), 100) if envelope else None) or header(headers, "traceparent")
    trace_id = trace_id_of(traceparent_raw)
    traceparent = traceparent_raw.strip() if trace_id and traceparent_raw else None
    replayed_from = _short(header(headers, HEADER_REPLAYED_FROM), 300)
    dead = _dead_letter_facts(topic, headers) if topic.endswith(DLQ_SUFFIX) else None

    identity = str(event_id) if event_id else "sha256:" + hashlib.sha256(value).hexdigest()
    if dead is not None:
        entry_key = _key("dlq", topic, identity, dead.consumer_group, dead.original_topic, dead.original_partition,
                         dead.original_offset)
    elif event_id is None:
        entry_key = _key("raw", topic, partition, offset, identity)
    elif replayed_from:
        entry_key = _key("replay", topic, identity, replayed_from)
    else:
        entry_key = _key("event", topic, identity)

    mcp_code = safe_identifier(data.get("mcp_code"), limit=50) if data else None
    return JournalRecord(
        entry_key=entry_key,
        topic=topic,
        partition=partition,
        offset=offset,
        event_id=event_id,
        event_type=event_type,
        schema_version=_int(envelope.get("schema_version")) if envelope else None,
        occurred_at=_time(envelope.get("time")) if envelope else None,
        source=safe_identifier(envelope.get("source"), limit=100) if envelope else None,
        subject=safe_identifier(envelope.get("subject")) if envelope else None,
        member_id=member_id(envelope.get("member_id")) if envelope else None,
        correlation_id=_uuid(envelope.get("correlation_id")) if envelope else None,
        causation_id=_uuid(envelope.get("causation_id")) if envelope else None,
        traceparent=traceparent,
        trace_id=trace_id,
        mcp_code=mcp_code,
        replayed_from=replayed_from,
        references=references_in(data),
        data=data,
        dead_letter=dead,
    )
