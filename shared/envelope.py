"""The one envelope every CalHub event travels in, and the constructors that keep lineage intact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from uuid6 import uuid7

from shared.contracts.base import EventData

DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    """An immutable event: metadata for routing, lineage and tracing around a typed payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID = Field(description="Time-ordered UUIDv7; the inbox deduplicates on it.")
    type: str = Field(description="`<aggregate>.<past-tense verb>`, e.g. `referral.received`.")
    schema_version: int = Field(ge=1, description="Major version of the payload schema.")
    time: datetime = Field(description="When the event happened, UTC.")
    source: str = Field(description="The producing service.")
    subject: str = Field(min_length=1, description="The aggregate id; also the Kafka key. Never PHI.")
    member_id: str | None = Field(default=None, description="CalHub's internal member id (never a CIN).")
    correlation_id: UUID = Field(description="Shared by every event of one business flow.")
    causation_id: UUID | None = Field(default=None, description="The event (or request) that caused this one.")
    traceparent: str | None = Field(default=None, description="W3C trace context of the producing span.")
    data: DataT

    @field_validator("time")
    @classmethod
    def _time_is_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        return value.astimezone(UTC)

    @property
    def topic(self) -> str:
        """The logical topic of this event's aggregate (without any deployment prefix)."""
        return self.data.topic.name

    def to_json(self) -> bytes:
        """Serialize for the wire (UTF-8 JSON)."""
        return self.model_dump_json().encode()


def _current_traceparent() -> str | None:
    # Imported lazily so the envelope stays usable without the telemetry stack configured.
    from shared.telemetry import current_traceparent

    return current_traceparent()


def new_event(
    data: DataT,
    *,
    subject: str,
    source: str,
    member_id: str | None = None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
    time: datetime | None = None,
) -> Envelope[DataT]:
    """Start a new lineage (or continue one given its correlation id) with a fresh event."""
    event_id = uuid7()
    # Parametrize by the payload's concrete class so the envelope validates and serializes it exactly.
    envelope_type = cast("type[Envelope[DataT]]", Envelope.__class_getitem__(type(data)))
    return envelope_type(
        id=event_id,
        type=data.event_type,
        schema_version=data.schema_version,
        time=time or datetime.now(UTC),
        source=source,
        subject=subject,
        member_id=member_id,
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        traceparent=_current_traceparent(),
        data=data,
    )


def caused_by(
    parent: Envelope[Any],
    data: DataT,
    *,
    subject: str,
    source: str,
    member_id: str | None = None,
    time: datetime | None = None,
) -> Envelope[DataT]:
    """A follow-up event: same correlation id as `parent`, causation id = `parent.id`."""
    return new_event(
        data,
        subject=subject,
        source=source,
        member_id=member_id if member_id is not None else parent.member_id,
        correlation_id=parent.correlation_id,
        causation_id=parent.id,
        time=time,
    )
