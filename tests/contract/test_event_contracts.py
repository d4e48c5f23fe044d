"""Every published event type round-trips through the envelope and the wire codec, and names its topic right."""

from __future__ import annotations

import types
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from shared.bus.message import IncomingMessage, decode, encode
from shared.contracts import EVENT_TYPES
from shared.contracts.base import EventData
from shared.envelope import caused_by, new_event

PUBLISHED = [m for m in EVENT_TYPES if m.__module__.startswith("shared.contracts.")]
SAMPLE_BY_NAME = {"cin": "12345678A", "sha256": "ab" * 32, "zip": "95814", "state": "CA"}


def sample(annotation: Any, name: str = "") -> Any:
    """A valid sample value for a field type (synthetic data only)."""
    if name in SAMPLE_BY_NAME:
        return SAMPLE_BY_NAME[name]
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return sample(options[0], name)
    if origin is tuple:
        return (sample(get_args(annotation)[0], name),)
    if origin is dict:
        return {"extra_column": "value"}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return next(iter(annotation))
        if issubclass(annotation, BaseModel):
            return annotation(**{f: sample(info.annotation, f) for f, info in annotation.model_fields.items()})
        if annotation is bool:
            return True
        if annotation is int:
            return 3
        if annotation is Decimal:
            return Decimal("125.50")
        if annotation is datetime:
            return datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
        if annotation is date:
            return date(2026, 3, 2)
        if annotation is str:
            return f"sample-{name}"
    raise AssertionError(f"no sample for {annotation!r} ({name})")


def make(model: type[EventData]) -> EventData:
    return model(**{f: sample(info.annotation, f) for f, info in model.model_fields.items()})


def test_contracts_are_registered() -> None:
    assert len(PUBLISHED) >= 30


@pytest.mark.parametrize("model", PUBLISHED, ids=lambda m: m.event_type)
def test_event_round_trips_through_the_wire(model: type[EventData]) -> None:
    data = make(model)
    envelope = new_event(data, subject="subject-1", source=model.topic.service, member_id="mbr_1")
    message = encode(envelope)
    assert message.topic == model.topic.name
    assert message.key == b"subject-1"
    back = decode(IncomingMessage(topic=message.topic, partition=0, offset=0, key=message.key,
                                  value=message.value, headers=message.headers))
    assert back == envelope
    assert back.data == data


@pytest.mark.parametrize("model", PUBLISHED, ids=lambda m: m.event_type)
def test_event_type_belongs_to_its_topic(model: type[EventData]) -> None:
    aggregate, verb = model.event_type.split(".", 1)
    assert model.topic.aggregate == aggregate
    assert model.topic.name == f"{model.topic.service}.{aggregate}.v{model.topic.major}"
    assert verb and verb.replace("_", "").isalpha()


def test_follow_up_event_keeps_the_lineage() -> None:
    first = new_event(make(PUBLISHED[0]), subject="a", source="referrals")
    second = caused_by(first, make(PUBLISHED[1]), subject="b", source="authorizations")
    assert second.correlation_id == first.correlation_id
    assert second.causation_id == first.id
    assert second.id != first.id and second.id.version == 7


def test_unknown_fields_are_ignored_within_a_major_version() -> None:
    model = PUBLISHED[0]
    envelope = new_event(make(model), subject="s", source="x")
    raw = envelope.model_dump(mode="json")
    raw["data"]["added_in_a_later_minor"] = "value"
    raw["added_envelope_field"] = 1
    again = type(envelope).model_validate(raw)
    assert again == envelope


@pytest.mark.parametrize("event_type", ["authorization.expired", "authorization.closed"])
def test_an_authorization_end_written_before_it_named_its_referral_still_reads(event_type: str) -> None:
    """`referral_id` was added within major 1 (decision 0127): an end already on the topic, or in a dead-letter
    queue, from before the addition reads with no referral, and the schema version stays 1."""
    model = EVENT_TYPES.get(event_type)
    envelope = new_event(make(model), subject="s", source="authorizations")
    raw = envelope.model_dump(mode="json")
    del raw["data"]["referral_id"]
    older = type(envelope).model_validate(raw)
    assert older.data.referral_id is None and older.schema_version == model.schema_version == 1
